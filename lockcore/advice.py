"""What ``kubectl lock acquire`` warns about once it holds its locks: the ways they can still be bypassed.

* **Nothing enforces the lock.** The leasegate ValidatingWebhookConfigurations
  (labelled ``app.kubernetes.io/managed-by=leasegate``, or named by the caller)
  are read and matched with :mod:`lockcore.coverage`; a kind or namespace
  none of their webhooks judges gets a warning. A caller who may not read them
  gets none (nothing to go on); a cluster with none installed gets one notice.
* **An unlocked owner.** The garbage collector (exempt from the webhook)
  deletes an object once *all* its ``ownerReferences`` owners are gone, so
  deleting an unlocked owner deletes a locked dependent, and a locked owner is
  no shield if the collector can delete *it* (its own owners unlocked). Unless
  some chain of locked owners (by any transaction) reaches an object with no
  owners, each unlocked owner on the way is named with the command that locks it.

Checks never fail the acquire: an API error while checking means no warning.
The object is read as ``PartialObjectMetadata`` (metadata only: no Secret data
crosses the wire).

Example::

    >>> for line in acquire_warnings(api, manager, [Locked(key, rtype)], txn="t42",  # doctest: +SKIP
    ...                              retry_hint="kubectl lock acquire {target} --txn t42 --ttl 600s"):
    ...     print("Warning:", line, file=sys.stderr)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.coverage import MANAGED_BY_SELECTOR, Write, covering_webhooks
from lockcore.errors import LockError
from lockcore.manager import LeaseManager
from lockcore.naming import InvalidKeyError, ResourceKey, describe_object
from lockcore.resources import Discovery, ResourceType

# Statuses that mean "this caller cannot see it": the check is skipped, not failed.
_UNSEEN = (401, 403, 404)
_METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


@dataclass(frozen=True)
class Locked:
    """An object just locked, with its type as discovery described it."""

    key: ResourceKey
    rtype: ResourceType

    def describe(self) -> str:
        return describe_object(self.key.group, self.key.kind, self.key.namespace, self.key.name)


def acquire_warnings(api: client.ApiClient, manager: LeaseManager, locked: Sequence[Locked], *,
                     retry_hint: str, configurations: Sequence[str] = ()) -> list[str]:
    """Warning lines (without ``Warning:``) for locks that can still be bypassed.

    ``retry_hint`` is the command that locks one more object, with ``{target}``
    for it; ``configurations`` names the ValidatingWebhookConfigurations to
    check instead of those labelled as leasegate's.
    """
    metadata = {item: object_metadata(api, item) for item in locked}
    lines = _coverage(api, locked, metadata, configurations)
    owners = _Owners(api, manager, Discovery(api))
    for item in locked:
        lines += owners.warnings(item, metadata[item], retry_hint)
    return lines


def object_metadata(api: client.ApiClient, item: Locked) -> dict[str, Any] | None:
    """The object's metadata; None if it does not exist (yet) or the caller may not read it."""
    rtype, key = item.rtype, item.key
    base = f"/apis/{rtype.group}/{rtype.version}" if rtype.group else f"/api/{rtype.version}"
    scope = f"/namespaces/{quote(key.namespace)}" if key.namespace else ""
    body = _get_json(api, f"{base}{scope}/{rtype.plural}/{quote(key.name)}", accept=_METADATA_ONLY)
    return None if body is None else dict(body.get("metadata") or {})


def _get_json(api: client.ApiClient, path: str, *, accept: str = "application/json") -> dict[str, Any] | None:
    """GET ``path`` as JSON; None for the statuses in ``_UNSEEN``."""
    response: Any = api.call_api(*api.param_serialize(  # a raw urllib3 response; the client never raises here
        method="GET", resource_path=path, header_params={"Accept": accept}, auth_settings=["BearerToken"]))
    response.read()
    if response.status in _UNSEEN:
        return None
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=response)
    found: dict[str, Any] = json.loads(response.data)
    return found


def webhook_configurations(api: client.ApiClient, names: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """The leasegate ValidatingWebhookConfigurations (or those ``names``); None if the caller may not list them."""
    path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    if names:
        found = [_get_json(api, f"{path}/{quote(name)}") for name in names]
        return [config for config in found if config is not None]
    listed = _get_json(api, f"{path}?labelSelector={quote(MANAGED_BY_SELECTOR)}")
    return None if listed is None else list(listed.get("items") or [])


def _coverage(api: client.ApiClient, locked: Sequence[Locked], metadata: Mapping[Locked, dict[str, Any] | None],
                 names: Sequence[str]) -> list[str]:
    try:
        configurations = webhook_configurations(api, names)
    except (ApiException, OSError):
        return []
    if configurations is None:
        return []
    if not configurations:
        which = ", ".join(names) if names else f"labelled {MANAGED_BY_SELECTOR}"
        return [f"no leasegate ValidatingWebhookConfiguration ({which}) is installed: locks are advisory only"]
    checked = ", ".join(str((c.get("metadata") or {}).get("name")) for c in configurations)
    namespace_labels: dict[str, Mapping[str, str] | None] = {}
    lines = []
    for item in locked:
        ns = item.key.namespace
        if ns and ns not in namespace_labels:
            namespace_labels[ns] = _labels(_get_json(api, f"/api/v1/namespaces/{quote(ns)}"))
        meta = metadata[item]
        write = Write(item.rtype.group, item.rtype.version, item.rtype.plural, item.rtype.namespaced)
        if not covering_webhooks(configurations, write, namespace_labels=namespace_labels.get(ns),
                                 object_labels=None if meta is None else dict(meta.get("labels") or {})):
            lines.append(f"no leasegate webhook judges updates of {item.describe()} ({checked}): "
                         "its lock is not enforced")
    return lines


def _labels(body: Mapping[str, Any] | None) -> dict[str, str] | None:
    return None if body is None else dict((body.get("metadata") or {}).get("labels") or {})


# Owner chains longer than this are not followed (real ones: Deployment > ReplicaSet > Pod).
_MAX_OWNER_DEPTH = 8
_Exposure = tuple[tuple[Locked, ...], Locked]  # (locked owners in between, the unlocked owner)


@dataclass(frozen=True)
class _Owners:
    """Walks ownerReferences up from a locked object to the owners whose deletion would reach it."""

    api: client.ApiClient
    manager: LeaseManager
    discovery: Discovery

    def warnings(self, item: Locked, meta: Mapping[str, Any] | None, retry_hint: str) -> list[str]:
        lines = []
        for through, owner in self.exposures(item, meta, frozenset({item.key}), 0) or []:
            via = f" (through {', '.join(o.describe() for o in through)})" if through else ""
            lines.append(f"{item.describe()} is owned by {owner.describe()}{via}, which is not locked: deleting it "
                         f"makes the garbage collector delete {item.describe()} despite its lock; lock it too: "
                         f"{retry_hint.format(target=owner.describe())}")
        return lines

    def exposures(self, item: Locked, meta: Mapping[str, Any] | None, seen: frozenset[ResourceKey],
                  depth: int) -> list[_Exposure] | None:
        """None if the garbage collector cannot reach ``item``, else the unlocked owners it would come through.

        The collector deletes an object once all its owners are gone, and a
        locked owner is gone only if the collector deletes it in turn: an object
        is safe when it has no owners, or one locked owner that is itself safe.
        What cannot be read counts as safe (no warning rather than a wrong one).
        """
        refs = (meta or {}).get("ownerReferences") or []
        owners = [o for o in (self.owner(ref, item.key.namespace) for ref in refs) if o and o.key not in seen]
        if not owners or depth >= _MAX_OWNER_DEPTH:
            return None
        found: list[_Exposure] = []
        for owner in owners:
            if not _is_locked(self.manager, owner.key):
                found.append(((), owner))
                continue
            above = self.exposures(owner, object_metadata(self.api, owner), seen | {owner.key}, depth + 1)
            if above is None:
                return None
            found += [((owner, *through), top) for through, top in above]
        return found

    def owner(self, ref: Mapping[str, Any], namespace: str) -> Locked | None:
        """An ownerReference as a lockable object; owners are in the dependent's namespace or cluster-scoped."""
        group, _, version = str(ref.get("apiVersion") or "").rpartition("/")
        kind = str(ref.get("kind") or "")
        try:
            rtype = self.discovery.resolve(f"{kind}.{version}.{group}" if group else f"{kind}.{version}")
            key = ResourceKey(group=rtype.group, kind=rtype.kind, namespace=namespace if rtype.namespaced else "",
                              name=str(ref.get("name") or ""))
        except (InvalidKeyError, ApiException):
            return None  # a kind the server no longer serves (or a name lockcore cannot lock): nothing to suggest
        return Locked(key, rtype)


def _is_locked(manager: LeaseManager, key: ResourceKey) -> bool:
    try:
        state = manager.get_lock(manager.ref_for(key))
    except LockError:
        return True  # cannot tell: say nothing rather than something wrong
    return state is not None and state.is_live(manager.clock.now(), manager.settings.clock_skew_seconds)
