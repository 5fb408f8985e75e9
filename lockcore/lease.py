"""The lock Lease: its layout on the wire and the expiry rule.

One module owns how a lock is written into a ``coordination.k8s.io/v1`` Lease
(labels, annotations, spec fields) and how a Lease read back is judged live or
expired, so that :mod:`lockcore.manager` and the webhook cannot disagree.

Expiry is ``renewTime + leaseDurationSeconds``. Whoever wants to get past a
lock (a taker in :func:`lockcore.manager.LeaseManager.acquire`, the webhook
judging a write) waits ``clock_skew_seconds`` longer than that: a holder whose
clock runs behind by less than the margin can never be overtaken while it still
believes it holds the lock. See docs/INVARIANTS.md.

Example::

    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> s = LeaseState(holder="t1", renew_time=t0, duration_seconds=10)
    >>> s.is_live(t0 + timedelta(seconds=11), skew_seconds=2.0)
    True
    >>> s.is_live(t0 + timedelta(seconds=13), skew_seconds=2.0)
    False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from lockcore.clock import utcnow
from lockcore.kube import (
    LEASE_API_VERSION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PRINCIPAL_ANNOTATION,
    RESOURCE_ANNOTATION,
    TARGET_ANNOTATION,
    format_micro_time,
)
from lockcore.members import MEMBERS_ANNOTATION, Members, MembersError
from lockcore.naming import ResourceKey, validate_txn
from lockcore.profiles import LockProfile, Profile

__all__ = ["LeaseState", "format_micro_time", "lease_body", "lease_seconds", "parse_time", "txn_label",
           "utcnow"]
MAX_LEASE_SECONDS = 7 * 24 * 3600


def txn_label(profile: Profile) -> str:
    """The Lease label holding the transaction name under ``profile``."""
    return LockProfile.of(profile).txn_label


def lease_seconds(timeout: float | timedelta) -> int:
    """Convert a lock timeout to ``leaseDurationSeconds``.

    The field is an integer; a fraction rounds *up* so a lock never lives
    shorter than asked (0.2 s becomes 1 s, not 0). Non-positive or absurdly
    long timeouts are refused.

    >>> lease_seconds(0.2), lease_seconds(timedelta(minutes=10))
    (1, 600)
    """
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"lock timeout must be positive, got {timeout!r}")
    if seconds > MAX_LEASE_SECONDS:
        raise ValueError(f"lock timeout {seconds:.0f}s exceeds the maximum of {MAX_LEASE_SECONDS}s")
    return math.ceil(seconds)


def parse_time(value: Any) -> datetime | None:
    """Parse a MicroTime/Time as the API server sends it (or a datetime)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What a lock Lease says, read back from the API server.

    ``holder`` is ``holderIdentity`` (the transaction); ``principal`` is the
    Kubernetes user who acquired it, when recorded. ``members`` is None for
    a lock that is not identity-bound, else its :class:`~lockcore.members.Members`
    (:meth:`Members.unreadable` when the annotation cannot be parsed: it
    admits nobody). Slotted: the webhook's cache keeps one per lock Lease,
    100k of them in the benchmark (identical members share one object).
    """

    holder: str
    renew_time: datetime | None
    duration_seconds: int | None
    acquire_time: datetime | None = None
    principal: str = ""
    resource_version: str = ""
    namespace: str = ""
    name: str = ""
    resource: ResourceKey | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    members: Members | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, details: bool = True) -> LeaseState:
        """Build from a Lease as JSON (the API server's wire form).

        ``details=False`` leaves out ``resource`` and ``labels``, which only
        listings show: what the admission decision needs, at a fraction of the
        memory and garbage-collector work per cached Lease.
        """
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        annotations = meta.get("annotations") or {}
        resource: ResourceKey | None = None
        encoded = annotations.get(RESOURCE_ANNOTATION) if details else None
        if encoded:
            try:
                resource = ResourceKey.decode(encoded)
            except ValueError:
                resource = None
        duration = spec.get("leaseDurationSeconds")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=parse_time(spec.get("renewTime")),
            duration_seconds=int(duration) if duration is not None else None,
            acquire_time=parse_time(spec.get("acquireTime")),
            principal=str(annotations.get(PRINCIPAL_ANNOTATION) or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            resource=resource,
            labels=dict(meta.get("labels") or {}) if details else {},
            members=_members(annotations.get(MEMBERS_ANNOTATION)),
        )

    @property
    def identity_bound(self) -> bool:
        """Whether only members may write the locked object (the Lease records members)."""
        return self.members is not None

    def expires_at(self) -> datetime | None:
        """Nominal expiry, ``renewTime + leaseDurationSeconds``; None if unset."""
        start = self.renew_time or self.acquire_time
        if start is None or self.duration_seconds is None:
            return None
        return start + timedelta(seconds=self.duration_seconds)

    def seconds_left(self, now: datetime) -> float:
        """Seconds until nominal expiry (negative once past)."""
        expiry = self.expires_at()
        return (expiry - now).total_seconds() if expiry is not None else 0.0

    def is_live(self, now: datetime, skew_seconds: float) -> bool:
        """Whether others must still respect this lock at ``now``.

        A Lease with no holder, or without renew time or duration, locks
        nothing (it cannot ever expire, so honouring it would deadlock).
        """
        expiry = self.expires_at()
        if not self.holder or expiry is None:
            return False
        return now < expiry + timedelta(seconds=skew_seconds)

    def held_by(self, txn: str) -> bool:
        return self.holder == txn


def _members(encoded: Any) -> Members | None:
    """The members an annotation value records; unreadable ones fail closed, never raise."""
    if encoded is None:
        return None
    try:
        return Members.decode(encoded)
    except MembersError:
        return Members.unreadable()


def lease_body(
    *,
    namespace: str,
    name: str,
    key: ResourceKey,
    txn: str,
    duration_seconds: int,
    now: datetime,
    principal: str,
    profile: Profile,
    acquire_time: datetime | None = None,
    resource_version: str = "",
    members: Members | None = None,
) -> dict[str, Any]:
    """The full Lease object for a lock, as JSON (create and takeover send this).

    ``members`` (an identity-bound lock) go into :data:`~lockcore.members.MEMBERS_ANNOTATION`.
    """
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, txn_label(profile): validate_txn(txn)},
        "annotations": _annotations(key, principal, members),
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    spec = {"holderIdentity": txn, "leaseDurationSeconds": duration_seconds,
            "acquireTime": format_micro_time(acquire_time or now), "renewTime": format_micro_time(now)}
    return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}


def _annotations(key: ResourceKey, principal: str, members: Members | None) -> dict[str, str]:
    """What a lock Lease records beside its holder: the locked object, who took it, its members."""
    annotations = {RESOURCE_ANNOTATION: key.encode(), TARGET_ANNOTATION: key.target(),
                   PRINCIPAL_ANNOTATION: principal}
    if members is not None:
        annotations[MEMBERS_ANNOTATION] = members.encode()
    return annotations
