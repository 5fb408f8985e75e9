"""The lease store: lock Leases on the wire, beneath the lock algorithm.

The seam client-go's leader election has between ``LeaderElector`` (which
decides) and ``resourcelock.Interface`` (which reads and writes the record):
:class:`LeaseStore` makes the API calls on ``coordination.k8s.io/v1`` Leases
and nothing else. Every write is conditional (a create, a PUT carrying the
``resourceVersion`` read, a JSON patch whose ``test`` operations pin what was
seen, a DELETE with preconditions) and says whether it applied: a refused
precondition is an answer (False), not an error. Any other failure becomes a
:class:`~lockcore.errors.LeaseOpError` chaining the API error.

It remembers the last state of each Lease it wrote or read (:class:`Seen`),
so the algorithm can renew and release without a read first.

Leases are read as the API server's JSON (``_preload_content=False``) and
judged by :class:`lockcore.lease.LeaseState`, the parser the webhook uses too.

Example::

    >>> store = LeaseStore(api_client, request_timeout=10)  # doctest: +SKIP
    >>> store.get(LeaseRef("shop", "lg.deployment.web.apps")).state.holder  # doctest: +SKIP
    't42'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.errors import LeaseOp, LeaseOpError
from lockcore.kube import escape_json_pointer, format_micro_time
from lockcore.lease import LeaseState
from lockcore.members import MEMBERS_ANNOTATION, Members
from lockcore.naming import LeaseRef

__all__ = ["LeaseStore", "LockStore", "Seen"]
_JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Seen:
    """The last state of a Lease the store wrote or read, as the server sent it."""

    state: LeaseState
    renew_time_raw: str
    uid: str

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Seen:
        return cls(
            state=LeaseState.from_json(obj),
            renew_time_raw=str((obj.get("spec") or {}).get("renewTime") or ""),
            uid=str((obj.get("metadata") or {}).get("uid") or ""),
        )


class LockStore(Protocol):
    """What the lock algorithm asks of a store (:class:`LeaseStore` on a cluster)."""

    def cached(self, lease: LeaseRef) -> Seen | None: ...

    def forget(self, lease: LeaseRef) -> None: ...

    def get(self, lease: LeaseRef, op: LeaseOp = "getting") -> Seen | None: ...

    def create(self, lease: LeaseRef, body: dict[str, Any]) -> bool: ...

    def replace(self, lease: LeaseRef, body: dict[str, Any], op: LeaseOp) -> bool: ...

    def patch_renew(self, lease: LeaseRef, txn: str, seen: Seen, now: datetime, seconds: int) -> bool: ...

    def patch_members(self, lease: LeaseRef, txn: str, seen: LeaseState, members: Members) -> bool: ...

    def delete_if_unchanged(self, lease: LeaseRef, seen: Seen) -> bool: ...


@dataclass(frozen=True)
class _Reply:
    """One API call's outcome: 2xx with the object, or an anticipated error status."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class LeaseStore:
    """Get, create, replace, patch, delete and list lock Leases; safe to share between threads.

    Args:
        api_client: an official-client ``ApiClient``.
        request_timeout: seconds before an API call is abandoned.
    """

    def __init__(self, api_client: Any, *, request_timeout: float) -> None:
        self._leases = client.CoordinationV1Api(api_client)
        # Every call reads the raw JSON (one parser for library and webhook) and is bounded in time.
        self._wire: dict[str, Any] = {"_preload_content": False, "_request_timeout": request_timeout}
        self._seen: dict[LeaseRef, Seen] = {}
        self._seen_lock = threading.Lock()

    # -- reads ---------------------------------------------------------------

    def get(self, lease: LeaseRef, op: LeaseOp = "getting") -> Seen | None:
        """The Lease as it is now, or None if there is none; ``op`` names the step in errors."""
        reply = self._call(op, lease, lambda: self._leases.read_namespaced_lease(
            lease.name, lease.namespace, **self._wire), expect=(404,))
        return self._outcome(lease, reply) if reply.ok else None

    def list_leases(self, selector: str, namespace: str | None = None) -> list[LeaseState]:
        """The Leases matching the label ``selector`` in ``namespace`` (None: every namespace)."""
        where = LeaseRef(namespace or "all-namespaces", "list")

        def call() -> Any:
            if namespace:
                return self._leases.list_namespaced_lease(namespace, label_selector=selector, **self._wire)
            return self._leases.list_lease_for_all_namespaces(label_selector=selector, **self._wire)

        reply = self._call("listing", where, call)
        return [LeaseState.from_json(item) for item in reply.body.get("items") or []]

    # -- conditional writes: False when the precondition failed -----------

    def create(self, lease: LeaseRef, body: dict[str, Any]) -> bool:
        """POST the Lease; False if it exists already (409)."""
        model = _lease_model(body)
        reply = self._call("creating", lease, lambda: self._leases.create_namespaced_lease(
            lease.namespace, model, **self._wire), expect=(409,))
        return self._outcome(lease, reply) is not None

    def replace(self, lease: LeaseRef, body: dict[str, Any], op: LeaseOp) -> bool:
        """PUT the Lease on the ``resourceVersion`` in ``body``; False if it changed (409) or is gone (404)."""
        model = _lease_model(body)
        reply = self._call(op, lease, lambda: self._leases.replace_namespaced_lease(
            lease.name, lease.namespace, model, **self._wire), expect=(404, 409))
        return self._outcome(lease, reply) is not None

    def patch_renew(self, lease: LeaseRef, txn: str, seen: Seen, now: datetime, seconds: int) -> bool:
        """Set ``renewTime`` to ``now`` and the duration, if ``txn`` holds the version ``seen``."""
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/spec/holderIdentity", "value": txn},
            # renewTime changes on every write by anyone, so it pins the version seen.
            {"op": "test", "path": "/spec/renewTime", "value": seen.renew_time_raw or None},
            {"op": "replace", "path": "/spec/renewTime", "value": format_micro_time(now)},
            {"op": "replace", "path": "/spec/leaseDurationSeconds", "value": seconds},
        ]
        return self._patch("renewing", lease, ops)

    def patch_members(self, lease: LeaseRef, txn: str, seen: LeaseState, members: Members) -> bool:
        """Record ``members`` on the Lease, if ``txn`` holds the version ``seen``."""
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/spec/holderIdentity", "value": txn},
            {"op": "test", "path": "/metadata/resourceVersion", "value": seen.resource_version},
            {"op": "add", "path": f"/metadata/annotations/{escape_json_pointer(MEMBERS_ANNOTATION)}",
             "value": members.encode()},
        ]
        return self._patch("changing members", lease, ops)

    def delete_if_unchanged(self, lease: LeaseRef, seen: Seen) -> bool:
        """Delete exactly the version seen; False if it changed since (409). Gone already counts as deleted."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(
            resource_version=seen.state.resource_version or None, uid=seen.uid or None))
        reply = self._call("deleting", lease, lambda: self._leases.delete_namespaced_lease(
            lease.name, lease.namespace, body=options, **self._wire), expect=(404, 409))
        self.forget(lease)
        return reply.status != 409

    def delete(self, lease: LeaseRef) -> bool:
        """Delete the Lease whatever it holds (an operator's override); False if there was none."""
        reply = self._call("deleting", lease, lambda: self._leases.delete_namespaced_lease(
            lease.name, lease.namespace, **self._wire), expect=(404,))
        self.forget(lease)
        return reply.ok

    # -- the per-lease cache -------------------------------------------------

    def cached(self, lease: LeaseRef) -> Seen | None:
        """The last state of ``lease`` this store wrote or read, if it still trusts one."""
        with self._seen_lock:
            return self._seen.get(lease)

    def forget(self, lease: LeaseRef) -> None:
        with self._seen_lock:
            self._seen.pop(lease, None)

    # -- the wire ------------------------------------------------------------

    def _patch(self, op: LeaseOp, lease: LeaseRef, ops: list[dict[str, Any]]) -> bool:
        # A failed test op is 422 (Invalid) or 409; 404 is a deleted lease.
        reply = self._call(op, lease, lambda: self._leases.patch_namespaced_lease(
            lease.name, lease.namespace, ops, _content_type=_JSON_PATCH, **self._wire), expect=(404, 409, 422))
        return self._outcome(lease, reply) is not None

    def _outcome(self, lease: LeaseRef, reply: _Reply) -> Seen | None:
        """Remember what a successful call returned; forget the Lease after a refused one."""
        if not reply.ok:
            self.forget(lease)
            return None
        seen = Seen.from_json(reply.body)
        with self._seen_lock:
            self._seen[lease] = seen
        return seen

    def _call(self, op: LeaseOp, lease: LeaseRef, call: Callable[[], Any], *, expect: tuple[int, ...] = ()) -> _Reply:
        """Run one API call; anticipated error statuses come back, others raise LeaseOpError."""
        try:
            response = call()
        except ApiException as exc:
            if exc.status in expect:
                return _Reply(status=int(exc.status))
            raise LeaseOpError(op, lease.name, exc, namespace=lease.namespace) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise LeaseOpError(op, lease.name, exc, namespace=lease.namespace) from exc
        return _Reply(status=int(getattr(response, "status", 200)), body=json.loads(response.data))


def _lease_model(body: dict[str, Any]) -> Any:
    lease = client.V1Lease.from_dict(body)
    assert lease is not None
    return lease
