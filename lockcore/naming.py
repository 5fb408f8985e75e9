"""Which Lease locks which object: resource keys, lease names, validation.

The Lease of a namespaced object lives in the object's own namespace; the Lease
of a cluster-scoped object lives in the configured lock namespace. Its name is
derived from the key alone, so every client and the webhook find the same Lease
without any lookup. (A profile with its operator's own name scheme,
:class:`~lockcore.profiles.NameScheme`, names Leases that scheme's way.)

Names come in two forms, told apart by their first segment:

* readable, ``lg.<kind>.<name>`` for the core group and
  ``lg.<kind>.<name>.<group>`` otherwise (``lgc.`` instead of ``lg.`` for
  cluster-scoped objects). It is used when the object's name has no dot and the
  whole fits in 253 characters. Because the kind never has a dot and the name
  then has none either, the segments split back into exactly one key: the form
  is injective.
* hashed, ``lgh.<kind>.<name prefix>.<digest>`` (``lgch.`` when cluster-scoped),
  for everything else. The digest is 80 bits of SHA-256 over the exact key, so
  two keys share a hashed name only by a hash collision.

Kinds are compared case-insensitively within a group, as kubectl's RESTMapper
does; two kinds of one group that differ only in letter case would share locks,
which errs on the side of excluding too much, never too little.

Example::

    >>> lease_name(ResourceKey(group="apps", kind="Deployment", namespace="shop", name="web"))
    'lg.deployment.web.apps'
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from lockcore.kube import DNS_LABEL, DNS_SUBDOMAIN, LABEL_VALUE
from lockcore.profiles import LockProfile, NameScheme
from lockcore.settings import LockSettings, Profile

MAX_LEASE_NAME = 253
_DIGEST_CHARS = 16  # 16 base32 characters = 80 bits

_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_NON_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


class InvalidKeyError(ValueError):
    """A resource key, lease reference or transaction name is not valid.

    Raised before any API call, so bad input never reaches the cluster.
    """


@dataclass(frozen=True, order=True)
class ResourceKey:
    """Identifies one Kubernetes object for locking.

    ``namespace`` is empty for cluster-scoped objects; ``group`` is empty for
    the core API group. Validation happens on construction.

    Example::

        >>> ResourceKey(group="", kind="ConfigMap", namespace="shop", name="settings")
        ResourceKey(group='', kind='ConfigMap', namespace='shop', name='settings')
    """

    group: str
    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.group and (len(self.group) > 253 or not DNS_SUBDOMAIN.fullmatch(self.group)):
            raise InvalidKeyError(f"API group {self.group!r} is not a DNS subdomain")
        if not _KIND.fullmatch(self.kind) or len(self.kind) > 63:
            raise InvalidKeyError(f"kind {self.kind!r} must be alphanumeric, starting with a letter")
        if self.namespace and (len(self.namespace) > 63 or not DNS_LABEL.fullmatch(self.namespace)):
            raise InvalidKeyError(f"namespace {self.namespace!r} is not a DNS-1123 label")
        validate_object_name(self.name)

    @property
    def cluster_scoped(self) -> bool:
        return not self.namespace

    def describe(self) -> str:
        """Human form, as kubectl prints it: ``deployment.apps/web -n shop``."""
        return describe_object(self.group, self.kind, self.namespace, self.name)

    def target(self) -> str:
        """``group/Kind/namespace/name``: what the reservation policy's CEL builds from a request.

        Unambiguous without escaping: no part can contain a slash.

        >>> ResourceKey("apps", "Deployment", "shop", "web").target()
        'apps/Deployment/shop/web'
        """
        return f"{self.group}/{self.kind}/{self.namespace}/{self.name}"

    def encode(self) -> str:
        """A stable, unambiguous text form (recorded on the Lease for listing)."""
        return json.dumps([self.group, self.kind, self.namespace, self.name], separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> ResourceKey:
        """Inverse of :meth:`encode`."""
        try:
            group, kind, namespace, name = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise InvalidKeyError(f"not an encoded resource key: {text[:80]!r}") from exc
        return cls(group=str(group), kind=str(kind), namespace=str(namespace), name=str(name))


@dataclass(frozen=True, order=True)
class LeaseRef:
    """Where a lock's Lease lives: its namespace and name."""

    namespace: str
    name: str

    def __post_init__(self) -> None:
        if not self.namespace or len(self.namespace) > 63 or not DNS_LABEL.fullmatch(self.namespace):
            raise InvalidKeyError(f"lease namespace {self.namespace!r} is not a DNS-1123 label")
        if len(self.name) > MAX_LEASE_NAME or not DNS_SUBDOMAIN.fullmatch(self.name):
            raise InvalidKeyError(f"lease name {self.name!r} is not a DNS-1123 subdomain")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def describe_object(group: str, kind: str, namespace: str, name: str) -> str:
    """``kind.group/name -n namespace`` as kubectl prints it (no validation: for display).

    >>> describe_object("apps", "Deployment", "shop", "web")
    'deployment.apps/web -n shop'
    """
    kind_group = kind.lower() + (f".{group}" if group else "")
    where = f" -n {namespace}" if namespace else ""
    return f"{kind_group}/{name}{where}"


def validate_object_name(name: str) -> None:
    """Accept any name Kubernetes accepts for some resource (a path segment).

    The most permissive rule Kubernetes applies (RBAC objects, for instance,
    may contain ``:``) is: non-empty, not ``.`` or ``..``, no ``/`` or ``%``.
    """
    if not name or name in {".", ".."} or "/" in name or "%" in name or len(name) > 253:
        raise InvalidKeyError(f"object name {name!r} is not a valid Kubernetes object name")


def validate_txn(txn: str) -> str:
    """Check a transaction name: a label value (it is stored as a label).

    Returns it unchanged so it can be used inline.

    >>> validate_txn("t42")
    't42'
    """
    if not isinstance(txn, str) or len(txn) > 63 or not LABEL_VALUE.fullmatch(txn):
        raise InvalidKeyError(
            f"transaction name {txn!r} must be 1-63 characters of letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return txn


def lease_name(key: ResourceKey, profile: Profile = Profile.LEASEGATE, namespace: str = "") -> str:
    """Return the deterministic Lease name for ``key`` (a DNS-1123 subdomain).

    ``namespace`` is where the Lease lives; only a profile with its own name
    scheme (:attr:`~lockcore.profiles.LockProfile.names`) puts it in the name,
    and it defaults to the key's own namespace.
    """
    scheme = LockProfile.of(profile).names
    if scheme is not None:
        return _scheme_name(scheme, key, profile, namespace or key.namespace)
    kind = key.kind.lower()
    prefix = "lgc" if key.cluster_scoped else "lg"
    readable = ".".join([prefix, kind, key.name] + ([key.group] if key.group else []))
    if DNS_LABEL.fullmatch(key.name) and len(key.name) <= 63 and len(readable) <= MAX_LEASE_NAME:
        return readable
    digest_input = json.dumps(
        [key.group, kind, key.namespace, key.name], separators=(",", ":")
    ).encode()
    digest = base64.b32encode(hashlib.sha256(digest_input).digest()).decode().lower()
    hint = _NON_NAME_CHARS.sub("-", key.name.lower()).strip("-")[:40].strip("-") or "x"
    return f"{prefix}h.{kind}.{hint}.{digest[:_DIGEST_CHARS]}"


def lease_ref(key: ResourceKey, settings: LockSettings) -> LeaseRef:
    """Where the lock for ``key`` lives under ``settings``.

    >>> lease_ref(ResourceKey("", "Namespace", "", "shop"), LockSettings())
    LeaseRef(namespace='leasegate-system', name='lgc.namespace.shop')
    """
    namespace = key.namespace or settings.lock_namespace
    return LeaseRef(namespace=namespace, name=lease_name(key, settings.profile, namespace))


def _scheme_name(scheme: NameScheme, key: ResourceKey, profile: Profile, namespace: str) -> str:
    # An operator's scheme, kept byte-for-byte for interoperability. It ignores
    # the API group and folds case (see docs/INVARIANTS.md), which is why it is
    # not our default.
    name = scheme.name(namespace, key.kind, key.name)
    if len(name) > MAX_LEASE_NAME or not DNS_SUBDOMAIN.fullmatch(name):
        raise InvalidKeyError(
            f"{key.describe()} has no valid lease name under the {profile.value} profile ({name!r})"
        )
    return name
