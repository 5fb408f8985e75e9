"""The fence: the marker label that makes a lock hold from the instant acquire returns.

A Lease alone is advisory: nothing in the API server looks at it. Acquire
therefore *stamps* the locked object with ``leasegate.io/locked=<txn>`` (the
webhook admits the stamp as the holder's own write: it comes from the
principal recorded on the Lease), and release removes the stamp. The registration calls the
webhook for updates and deletes of marked objects only (objectSelector
matches the old or the new object), and the webhook refuses any write that
would drop or change the marker while the lock is live. So once acquire has
returned, every later write of the object carries the marker on its stored
or new version and is judged; writes of objects nobody locks never reach the
webhook at all. See docs/INVARIANTS.md ("fence").

Example::

    >>> fence = Fence(api_client)  # doctest: +SKIP
    >>> fence.stamp(ResourceKey("apps", "Deployment", "shop", "web"), "t42")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.errors import FenceError, FenceOp, LockError
from lockcore.kube import (
    LEASE_API_VERSION,
    LOCKED_LABEL,
    PRINCIPAL_ANNOTATION,
    PROBE_LABEL,
    RELEASED_ANNOTATION,
    escape_json_pointer,
    lease_path,
    object_path,
)
from lockcore.naming import LeaseRef, ResourceKey, validate_txn
from lockcore.resources import Discovery, ResourceType, request_json, request_json_warned

__all__ = ["Fence", "FenceError"]
log = logging.getLogger("lockcore.fence")
_MERGE_PATCH = "application/merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
# What webhook/policy.py answers a probe with (the reservation seen / the namespace judged).
IN_FORCE = "is in force"
PROBE_WARNING = "leasegate: reservations are judged in namespace"
UNJUDGED_FOR_SECONDS = 60.0


class Fence:
    """Stamp and un-stamp locked objects; safe to share between threads.

    Args:
        api_client: an official-client ``ApiClient``.
        request_timeout: seconds before a call is abandoned.
        discovery: resolves kinds to REST paths (shared with a CLI's own).
        clock: times the reservation probes (a fake one in tests).
    """

    def __init__(self, api_client: Any, *, request_timeout: float = 10.0,
                 discovery: Discovery | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._api = api_client
        self._timeout = request_timeout
        self._clock = clock
        self._discovery = discovery or Discovery(api_client, timeout=request_timeout)
        # Namespaces no reservation policy judged when last probed, and until when to trust that.
        self._unjudged: dict[str, float] = {}

    def stamp(self, key: ResourceKey, txn: str, principal: str = "") -> bool:
        """Mark ``key`` as locked by ``txn``; False if the object does not exist (nothing to mark).

        ``principal`` (who took the lock) is recorded beside the marker, so the
        API server can let the principal remove its own marker at release
        without calling the webhook. Raises :class:`FenceError` if the object
        exists but cannot be patched.
        """
        meta: dict[str, Any] = {"labels": {LOCKED_LABEL: validate_txn(txn)},
                                "annotations": {RELEASED_ANNOTATION: None}}
        if principal:
            meta["annotations"][PRINCIPAL_ANNOTATION] = principal
        status, body = self._call("stamping", key, "PATCH", {"metadata": meta}, _MERGE_PATCH)
        if status == 404:
            return False
        if not 200 <= status < 300:
            raise FenceError("stamping", key, _message(body), status=status)
        return True

    def unstamp(self, key: ResourceKey, txn: str | None) -> bool:
        """Remove the marker if it still names ``txn``; False if it did not (a newer holder's, or none).

        ``txn=None`` removes whatever marker there is (clean-up of stale markers).
        A release also records ``leasegate.io/released=<txn>``: the API server
        lets the principal recorded beside the marker make exactly this change
        without calling the webhook, so a release works while the webhook is
        down, and a plain ``kubectl replace`` that drops the marker by accident
        is still judged (and refused while the lock lives).
        """
        pointer = f"/metadata/labels/{escape_json_pointer(LOCKED_LABEL)}"
        test = [{"op": "test", "path": pointer, "value": txn}] if txn is not None else []
        ops = [*test, {"op": "remove", "path": pointer}]
        released = [{"op": "add", "path": f"/metadata/annotations/{escape_json_pointer(RELEASED_ANNOTATION)}",
                     "value": txn}] if txn is not None else []
        status, body = self._call("unstamping", key, "PATCH", ops + released, _JSON_PATCH)
        if status == 422 and released:  # an object stamped with no annotations at all (before 0.2)
            status, body = self._call("unstamping", key, "PATCH", ops, _JSON_PATCH)
        if status in (404, 409, 422):  # gone, or the test op failed: not ours to remove
            return False
        if not 200 <= status < 300:
            raise FenceError("unstamping", key, _message(body), status=status)
        return True

    def await_reservation(self, key: ResourceKey, lease: LeaseRef, *, present: bool = True,
                          timeout: float = 5.0) -> bool:
        """Return once the reservation policy sees ``lease`` (True), or at once if none judges here (False).

        ``present=False`` waits for the opposite, after a release: until the
        policy no longer has the Lease, a create of the name would still be
        refused.

        The policy reads lock Leases from the API server's informer, which may
        lag the write that created one by milliseconds: until it has the
        Lease, a create of the locked name would pass. A dry-run create of a
        Lease labelled ``leasegate.io/probe=<lease>`` is refused once the
        policy has it; it carries the probe policy's warning while the
        namespace is judged but the Lease is not seen yet; neither where no
        leasegate policy judges the namespace. Raises :class:`FenceError` if
        the reservation is not in force after ``timeout`` seconds.
        """
        if self._unjudged.get(lease.namespace, 0.0) > self._clock.monotonic():
            return False
        deadline = self._clock.monotonic() + timeout
        delay = 0.002
        while True:
            judged, seen = self._probe(key, lease)
            if not judged or seen == present:
                return judged
            if self._clock.monotonic() >= deadline:
                state = "see" if present else "let go of"
                raise FenceError("reserving", key, f"the reservation policy did not {state} lock lease "
                                 f"{lease} within {timeout:.0f}s")
            self._clock.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _probe(self, key: ResourceKey, lease: LeaseRef) -> tuple[bool, bool]:
        """One dry-run create of a probe Lease: (whether a reservation policy judges here, whether it sees ``lease``)."""
        body = {"apiVersion": LEASE_API_VERSION, "kind": "Lease",
                "metadata": {"generateName": "leasegate-probe-", "labels": {PROBE_LABEL: lease.name}}}
        try:
            status, answer, warnings = request_json_warned(
                self._api, "POST", lease_path(lease.namespace), body=body, query={"dryRun": "All"},
                timeout=self._timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FenceError("reserving", key, str(exc) or exc.__class__.__name__) from exc
        seen = status >= 400 and IN_FORCE in _message(answer)
        if status >= 400 and not seen:
            raise FenceError("reserving", key, _message(answer), status=status)
        judged = seen or any(PROBE_WARNING in w for w in warnings)
        if not judged:  # asked again only after a while (leasegate may be installed meanwhile)
            self._unjudged[lease.namespace] = self._clock.monotonic() + UNJUDGED_FOR_SECONDS
        return judged, seen

    def await_reservation_quietly(self, key: ResourceKey, lease: LeaseRef) -> None:
        """After a release: wait until creates of the name pass again; a failure only delays that."""
        try:
            self.await_reservation(key, lease, present=False)
        except FenceError as exc:
            log.warning("lock released, but the reservation policy may still refuse creates of its name: %s", exc)

    def unstamp_quietly(self, key: ResourceKey, txn: str) -> None:
        """:meth:`unstamp` for release paths: a failure leaves a stale marker, which is harmless.

        (With no live Lease the webhook allows every write of a marked object;
        ``kubectl lock prune`` removes such markers.)
        """
        try:
            self.unstamp(key, txn)
        except FenceError as exc:
            log.warning("lock released, but its marker stays: %s", exc)

    def _call(self, op: FenceOp, key: ResourceKey, method: str, body: Any, content_type: str) -> tuple[int, Any]:
        rtype = self._resolve(op, key)
        path = object_path(rtype.group, rtype.version, rtype.plural, key.namespace, key.name)
        try:
            return request_json(self._api, method, path, body=body, content_type=content_type,
                                timeout=self._timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FenceError(op, key, str(exc) or exc.__class__.__name__) from exc

    def _resolve(self, op: FenceOp, key: ResourceKey) -> ResourceType:
        try:
            return self._discovery.for_kind(key.group, key.kind)
        except (ApiException, urllib3.exceptions.HTTPError, OSError, LockError, ValueError) as exc:
            raise FenceError(op, key, f"cannot resolve the kind: {exc}") from exc


def _message(body: Any) -> str:
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return "unexpected answer"
