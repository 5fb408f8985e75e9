"""Stale markers (objects marked ``leasegate.io/locked`` that no live lock stands behind) and expired locks.

A marker outlives its lock when the holder crashed before release, or when
release could not remove it. It is harmless (with no live Lease the webhook
allows every write), but every write of the object still costs a webhook call.
:func:`stale_markers` finds them among the lockable resources
(:data:`lockcore.kube.LOCKABLE_RESOURCES`); ``kubectl lock prune`` lists them
and, with ``--apply``, removes each one conditionally (a marker re-stamped by
a new holder in between stays).

A lock whose holder crashed expires but its Lease stays, and the reservation
policy (CEL, no clock) keeps refusing creates of its object's name until the
Lease is gone: :func:`expired_locks` finds those Leases, and ``--apply``
deletes each one only if it is still the version read
(:meth:`~lockcore.manager.LeaseManager.release_expired`).

Example::

    >>> for stale in stale_markers(manager, Discovery(api)):  # doctest: +SKIP
    ...     print(stale.key.describe(), stale.txn, stale.why)
    configmap/web -n shop t41 no lease
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from lockcore.kube import LOCKABLE_RESOURCES, LOCKED_LABEL
from lockcore.lease import LeaseState
from lockcore.manager import LeaseManager
from lockcore.naming import InvalidKeyError, ResourceKey
from lockcore.resources import Discovery, ResourceType, request_json


@dataclass(frozen=True)
class StaleMarker:
    """A marked object, the transaction its marker names, and why no lock stands behind it."""

    key: ResourceKey
    txn: str
    why: str


def stale_markers(manager: LeaseManager, discovery: Discovery, *, namespace: str | None = None,
                  resources: Sequence[Mapping[str, Sequence[str]]] = LOCKABLE_RESOURCES) -> Iterator[StaleMarker]:
    """Every marked object (in ``namespace``, or everywhere) whose lock is gone, expired or another's.

    With a ``namespace``, cluster-scoped objects are left out (as ``-n`` scopes kubectl).
    """
    for rtype in _types(discovery, resources):
        if namespace and not rtype.namespaced:
            continue
        for key, txn in _marked(manager.api_client, rtype, namespace):
            why = _why_stale(manager, key, txn)
            if why:
                yield StaleMarker(key, txn, why)


def expired_locks(manager: LeaseManager, *, namespace: str | None = None) -> list[LeaseState]:
    """Lock Leases (in ``namespace``, or everywhere) that expired without being released, past the skew margin."""
    now, skew = manager.clock.now(), manager.settings.clock_skew_seconds
    return [state for state in manager.list_locks(namespace=namespace) if not state.is_live(now, skew)]


def _types(discovery: Discovery, resources: Sequence[Mapping[str, Sequence[str]]]) -> Iterator[ResourceType]:
    for entry in resources:
        for group in entry["apiGroups"]:
            for plural in entry["resources"]:
                try:
                    yield discovery.resolve(f"{plural}.{group}" if group else f"{plural}.v1")
                except InvalidKeyError:
                    continue  # a kind this server does not serve


def _marked(api: Any, rtype: ResourceType, namespace: str | None) -> Iterator[tuple[ResourceKey, str]]:
    prefix = f"/api/{rtype.version}" if not rtype.group else f"/apis/{rtype.group}/{rtype.version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    status, body = request_json(api, "GET", f"{prefix}{scope}/{rtype.plural}", query={"labelSelector": LOCKED_LABEL})
    if status == 403:
        return  # what the caller may not list, it cannot prune either
    if status != 200 or not isinstance(body, dict):
        raise ApiException(status=status, reason=f"listing {rtype.plural}")
    for item in body.get("items") or []:
        meta = item.get("metadata") or {}
        key = ResourceKey(rtype.group, rtype.kind, str(meta.get("namespace") or ""), str(meta.get("name")))
        yield key, str((meta.get("labels") or {}).get(LOCKED_LABEL, ""))


def _why_stale(manager: LeaseManager, key: ResourceKey, txn: str) -> str:
    state = manager.get_lock(manager.ref_for(key))
    if state is None:
        return "no lease"
    if not state.is_live(manager.clock.now(), manager.settings.clock_skew_seconds):
        return "lease expired"
    if state.holder != txn:
        return f"lease held by {state.holder!r}"
    return ""
