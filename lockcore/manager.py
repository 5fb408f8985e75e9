"""The lock manager: acquire, renew and release Lease locks, race-free.

:class:`LeaseManager` implements the reference ``Manager`` API on
``coordination.k8s.io/v1`` Leases. Every write is conditional, so concurrent
clients can never both believe they hold one lock:

* acquire creates the Lease (one call when uncontended); a 409 AlreadyExists
  means someone holds or held it: it is read, then renewed (same transaction)
  or taken over (expired) by an update carrying the read ``resourceVersion``,
  which the API server refuses (409) if anyone wrote in between;
* renew is one JSON patch whose ``test`` operations check that the holder is
  still this transaction and ``renewTime`` is still the value this manager last
  saw, so a renew can never resurrect a lease that someone else took over;
* release deletes with ``resourceVersion`` and ``uid`` preconditions, so it
  never deletes a lease someone else took over after it was read.

Leases are read as the API server's JSON (``_preload_content=False``) and
judged by :class:`lockcore.lease.LeaseState`, the parser the webhook uses too.

Example::

    >>> m = LeaseManager(settings=LockSettings(lock_namespace="locks"))  # doctest: +SKIP
    >>> key = ResourceKey(group="apps", kind="Deployment", namespace="shop", name="web")
    >>> ref = m.acquire(key, "t42", timeout=600)  # doctest: +SKIP
    >>> ref.name  # the lease name, what the reference API returns  # doctest: +SKIP
    'lg.deployment.web.apps'
    >>> m.release(ref, "t42")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.connect import api_client_from
from lockcore.errors import (
    AlreadyLockedError,
    LeaseOp,
    LeaseOpError,
    LockError,
    LockExpiredError,
)
from lockcore.fence import Fence, FenceError
from lockcore.identity import who_am_i
from lockcore.kube import escape_json_pointer, format_micro_time
from lockcore.lease import LeaseState, lease_body, lease_seconds, utcnow
from lockcore.members import MEMBERS_ANNOTATION, Members, MembersError
from lockcore.naming import (
    InvalidKeyError,
    LeaseRef,
    ResourceKey,
    lease_ref,
    validate_txn,
)
from lockcore.resources import Discovery
from lockcore.settings import LockSettings

Clock = Callable[[], datetime]
Timeout = float | timedelta
# Who belongs to an identity-bound lock: a Members value or specs ("user:alice",
# "group:sre", "sa:shop:deployer"); an empty list means the acquiring user alone.
MemberSpecs = Members | Iterable[str]

# Rounds of read-and-retry when other clients keep changing a lease under us.
# Each round means someone else made progress, so this bounds only our retries.
_MAX_ROUNDS = 4
_BACKOFF_START = 0.05
_BACKOFF_CAP = 2.0


class Manager(Protocol):
    """The reference lock API (translated from the Go ``Manager`` interface)."""

    def acquire(
        self, key: ResourceKey, txn: str, timeout: Timeout, *, wait: float | None = None,
        fence: bool = True, members: MemberSpecs | None = None,
    ) -> LeaseRef: ...

    def release(self, lease: LeaseRef, txn: str) -> None: ...

    def release_all(self, leases: Iterable[LeaseRef], txn: str) -> None: ...

    def renew(self, lease: LeaseRef, txn: str, timeout: Timeout) -> None: ...


@dataclass(frozen=True)
class _Reply:
    """One API call's outcome: 2xx with the object, or an anticipated error status."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    error: ApiException | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class _Seen:
    """The last state of a Lease this manager wrote or read, as the server sent it."""

    state: LeaseState
    renew_time_raw: str
    uid: str

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> _Seen:
        return cls(
            state=LeaseState.from_json(obj),
            renew_time_raw=str((obj.get("spec") or {}).get("renewTime") or ""),
            uid=str((obj.get("metadata") or {}).get("uid") or ""),
        )


class LeaseManager:
    """Lease locks on ``coordination.k8s.io/v1``; safe to share between threads.

    Args:
        api_client: an official-client ``ApiClient``; None loads the kubeconfig
            (or the in-cluster config), as kubectl would.
        settings: the lock settings shared with the webhook; None reads
            ``LEASEGATE_*`` from the environment.
        principal: the Kubernetes username to record on acquired Leases; None
            asks the API server once (a SelfSubjectReview) on first acquire.
        clock: the time source for ``renewTime`` and expiry (tests inject one).
        request_timeout: seconds before an API call is abandoned (a hung API
            server must not stall a renewal past the lease it is renewing).
        discovery: resolves kinds to REST paths for stamping the marker
            (pass the CLI's own to share what it fetched).

    ``acquire`` returns the :class:`~lockcore.naming.LeaseRef` of the lock;
    its ``name`` is the lease name the reference API returns.

    Fencing (the default, under a profile that fences): acquire stamps the
    locked object with ``leasegate.io/locked=<txn>`` after winning the Lease
    and returns only once the stamp is committed; release and force-release
    delete the Lease first, then remove the marker (see :mod:`lockcore.fence`).
    ``fence=False`` takes an advisory Lease only: the webhook is then never
    called for updates of the object, so nothing enforces the lock.

    API calls (counted by the integration tests): uncontended acquire 2 (POST
    Lease, PATCH of the object), renew 1 (JSON patch) when this manager wrote
    or read the lease last, release 2 or 3 (DELETE with preconditions,
    preceded by a GET when the cached state is missing or stale, then the
    PATCH removing the marker). The one-off SelfSubjectReview and the
    discovery documents (fetched once per API group) are not part of these
    counts; pass ``principal`` to avoid the former.
    """

    def __init__(
        self,
        api_client: Any = None,
        settings: LockSettings | None = None,
        *,
        principal: str | None = None,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        request_timeout: float = 10.0,
        discovery: Discovery | None = None,
    ) -> None:
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be positive, got {request_timeout!r}")
        self.request_timeout = request_timeout
        # Every call reads the raw JSON (one parser for library and webhook) and
        # is bounded in time.
        self._wire: dict[str, Any] = {"_preload_content": False, "_request_timeout": request_timeout}
        self.api_client = api_client if api_client is not None else api_client_from()
        self.settings = settings if settings is not None else LockSettings.from_env()
        self._leases = client.CoordinationV1Api(self.api_client)
        self._principal = principal
        self._principal_lock = threading.Lock()
        self._clock = clock
        self._rng = rng or random.Random()
        self._seen: dict[LeaseRef, _Seen] = {}
        self._seen_lock = threading.Lock()
        self._fence = Fence(self.api_client, request_timeout=request_timeout, discovery=discovery)
        self._fences = self.settings.lock_profile.fences

    # -- public API --------------------------------------------------------

    def ref_for(self, key: ResourceKey) -> LeaseRef:
        """Where the lock for ``key`` lives under this manager's settings."""
        return lease_ref(_check_key(key), self.settings)

    def principal(self, lease: LeaseRef | None = None) -> str:
        """The caller's Kubernetes username (asked once, then cached)."""
        with self._principal_lock:
            if self._principal is None:
                try:
                    self._principal = who_am_i(self.api_client, timeout=self.request_timeout)
                except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                    name = lease.name if lease else ""
                    raise LeaseOpError(
                        "creating", name, exc, namespace=lease.namespace if lease else ""
                    ) from exc
            return self._principal

    def acquire(
        self, key: ResourceKey, txn: str, timeout: Timeout, *, wait: float | None = None,
        fence: bool = True, members: MemberSpecs | None = None,
    ) -> LeaseRef:
        """Lock ``key`` for transaction ``txn`` for ``timeout`` (seconds or timedelta).

        Creates the Lease, renews it if ``txn`` already holds it, or takes it
        over if its holder's lease expired (``renewTime + leaseDurationSeconds
        + clock_skew_seconds`` has passed). Raises :class:`AlreadyLockedError`
        if another transaction holds it, unless ``wait`` seconds are given: then
        retries with jittered exponential backoff until that deadline.

        Then (``fence``, the default) stamps the object with the marker and
        waits until the API server's reservation policy sees the Lease (one
        dry-run probe, usually), so the lock holds from the moment this
        returns: writes of the object through the marker, creates of its name
        through the policy. If the object exists but cannot be stamped (the
        caller may not patch it), or the reservation is not in force within
        seconds, the Lease is given back and
        :class:`~lockcore.fence.FenceError` raised: nothing is left
        half-locked. An object that does not exist yet needs no stamp.

        ``members`` makes the lock identity-bound (docs/threat-model.md): the
        webhook then admits writes of the object only from these users, groups
        and service accounts, the acquiring user always among them. They are
        validated before any API call (:class:`~lockcore.members.MembersError`).
        Re-acquiring one's own live lock without ``members`` keeps its members;
        with members, it must already be identity-bound (members then replace them).

        >>> ref = manager.acquire(key, "t42", 30, wait=10)  # doctest: +SKIP
        >>> ref = manager.acquire(key, "t42", 30, members=["group:sre"])  # doctest: +SKIP
        """
        validate_txn(txn)
        seconds = lease_seconds(timeout)
        ref = self.ref_for(key)
        if wait is not None and wait < 0:
            raise ValueError(f"wait must be >= 0 seconds, got {wait!r}")
        bound = self._members(members)
        principal = self.principal(ref)
        bound = bound.with_user(principal) if bound is not None else None
        self._acquire_waiting(key, ref, _Ask(txn, seconds, bound), wait)
        if fence and self._fences:
            try:
                self._fence.stamp(key, txn, principal)
                self._fence.await_reservation(key, ref)
            except FenceError:
                self.release(ref, txn, unstamp=False)
                raise
        return ref

    def _members(self, members: MemberSpecs | None) -> Members | None:
        if members is None:
            return None
        if not self.settings.lock_profile.records_principal:
            raise MembersError(str(members), f"the {self.settings.profile.value} profile's Leases have no members")
        return members if isinstance(members, Members) else Members.of(members)

    def _acquire_waiting(self, key: ResourceKey, ref: LeaseRef, ask: _Ask, wait: float | None) -> LeaseRef:
        if wait is None:
            return self._acquire_once(key, ref, ask)
        deadline = time.monotonic() + wait
        delay = _BACKOFF_START
        while True:
            try:
                return self._acquire_once(key, ref, ask)
            except AlreadyLockedError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                # Jitter spreads waiters that were refused together apart in time.
                time.sleep(min(remaining, self._rng.uniform(delay / 2, delay)))
                delay = min(delay * 2, _BACKOFF_CAP)

    def renew(self, lease: LeaseRef, txn: str, timeout: Timeout) -> None:
        """Extend the lock ``txn`` holds on ``lease`` to ``timeout`` from now.

        Raises :class:`LockExpiredError` if the Lease is gone or expired in the
        holder's own view (``renewTime + leaseDurationSeconds`` passed), and
        :class:`AlreadyLockedError` if another transaction holds it.

        >>> manager.renew(ref, "t42", 600)  # doctest: +SKIP
        """
        validate_txn(txn)
        seconds = lease_seconds(timeout)
        _check_ref(lease)
        seen = self._cached(lease)
        if seen is not None and seen.state.held_by(txn) and self._holder_live(seen.state):
            reply = self._patch_renew(lease, txn, seconds, seen.renew_time_raw)
            if reply.ok:
                return
        for _ in range(_MAX_ROUNDS):
            current = self._read(lease, "renewing")
            if current is None:
                raise LockExpiredError(lease.name, namespace=lease.namespace)
            state = current.state
            if not state.held_by(txn):
                self._forget(lease)
                raise AlreadyLockedError(
                    lease.name,
                    state.holder,
                    namespace=lease.namespace,
                    expires_in_seconds=self._blocked_for(state),
                )
            if not self._holder_live(state):
                raise LockExpiredError(lease.name, namespace=lease.namespace)
            if self._patch_renew(lease, txn, seconds, current.renew_time_raw).ok:
                return
        raise LeaseOpError("renewing", lease.name, _Contended(lease), namespace=lease.namespace)

    def change_members(self, lease: LeaseRef, txn: str, *, add: MemberSpecs = (),
                       remove: MemberSpecs = ()) -> Members:
        """Add and remove members of the lock ``txn`` holds on ``lease``; returns the members now.

        Conditional: one JSON patch that tests the holder and the
        ``resourceVersion`` read (re-read and retried if someone wrote in
        between). Only an identity-bound lock has members to change (whether
        a lock is bound is chosen at acquire). The principal, and the last
        member, cannot be removed. While the lock is live the webhook lets only a member (or a
        lock admin) do this. Raises like :meth:`renew` when ``txn`` does not
        hold the lock, :class:`~lockcore.members.MembersError` for bad specs.

        >>> manager.change_members(ref, "t42", add=["user:bob"]).specs()  # doctest: +SKIP
        ('user:alice', 'user:bob')
        """
        validate_txn(txn)
        _check_ref(lease)
        adding, removing = self._members(add) or Members(), self._members(remove) or Members()
        for _ in range(_MAX_ROUNDS):
            state = self._held(lease, txn)
            changed = _changed_members(state, adding, removing)
            ops: list[dict[str, Any]] = [
                {"op": "test", "path": "/spec/holderIdentity", "value": txn},
                {"op": "test", "path": "/metadata/resourceVersion", "value": state.resource_version},
                {"op": "add", "path": f"/metadata/annotations/{escape_json_pointer(MEMBERS_ANNOTATION)}",
                 "value": changed.encode()},
            ]
            reply = self._call("changing members", lease, lambda: self._leases.patch_namespaced_lease(
                lease.name, lease.namespace, ops, _content_type="application/json-patch+json", **self._wire),
                expect=(404, 409, 422))
            if reply.ok:
                self._remember(lease, reply.body)
                return changed
        raise LeaseOpError("changing members", lease.name, _Contended(lease), namespace=lease.namespace)

    def _held(self, lease: LeaseRef, txn: str) -> LeaseState:
        """The Lease's current state if ``txn`` holds it live (holder's view), else raise as renew does."""
        current = self._read(lease, "getting")
        if current is None:
            raise LockExpiredError(lease.name, namespace=lease.namespace)
        state = current.state
        if not state.held_by(txn):
            raise AlreadyLockedError(lease.name, state.holder, namespace=lease.namespace,
                                     expires_in_seconds=self._blocked_for(state))
        if not self._holder_live(state):
            raise LockExpiredError(lease.name, namespace=lease.namespace)
        return state

    def release(self, lease: LeaseRef, txn: str, *, unstamp: bool = True) -> None:
        """Delete the lock if ``txn`` holds it; a no-op if it is gone or someone else's.

        The delete carries ``resourceVersion`` and ``uid`` preconditions, so a
        lease taken over after it was read is never deleted. Then the marker
        is removed if it still names ``txn`` (a newer holder's is left alone);
        the Lease goes first, so the webhook never sees a live lock on an
        unmarked object. A marker that cannot be removed stays, harmless.

        >>> manager.release(ref, "t42")  # doctest: +SKIP
        """
        validate_txn(txn)
        _check_ref(lease)
        deleted = self._delete_held(lease, txn)
        if unstamp and deleted is not None and deleted.resource is not None and self._fences:
            self._fence.unstamp_quietly(deleted.resource, txn)
            self._fence.await_reservation_quietly(deleted.resource, lease)

    def _delete_held(self, lease: LeaseRef, txn: str) -> LeaseState | None:
        """Delete the Lease if ``txn`` holds it; the state deleted, or None if there was nothing to."""
        seen = self._cached(lease)
        if seen is not None and seen.state.held_by(txn):
            if self._delete_if_unchanged(lease, seen):
                return seen.state
        for _ in range(_MAX_ROUNDS):
            current = self._read(lease, "deleting")
            if current is None or not current.state.held_by(txn):
                self._forget(lease)
                return None
            if self._delete_if_unchanged(lease, current):
                return current.state
        raise LeaseOpError("deleting", lease.name, _Contended(lease), namespace=lease.namespace)

    def release_all(self, leases: Iterable[LeaseRef], txn: str) -> None:
        """Release every lease, then raise the first error met, if any.

        >>> manager.release_all([ref_a, ref_b], "t42")  # doctest: +SKIP
        """
        first: LockError | None = None
        for lease in leases:
            try:
                self.release(lease, txn)
            except LockError as exc:
                first = first or exc
        if first is not None:
            raise first

    def force_release(self, lease: LeaseRef) -> bool:
        """Delete the lock whoever holds it (an operator's override), then its marker.

        Returns False if there was no such Lease. While the lock is live the
        webhook lets only its principal or a lock admin group delete it.

        >>> manager.force_release(LeaseRef("shop", "lg.deployment.web.apps"))  # doctest: +SKIP
        True
        """
        _check_ref(lease)
        current = self._read(lease, "getting")
        reply = self._call(
            "deleting",
            lease,
            lambda: self._leases.delete_namespaced_lease(
                lease.name, lease.namespace, **self._wire
            ),
            expect=(404,),
        )
        self._forget(lease)
        if current is not None and current.state.resource is not None and self._fences:
            self._fence.unstamp_quietly(current.state.resource, current.state.holder)
        return reply.ok

    def get_lock(self, lease: LeaseRef) -> LeaseState | None:
        """The lock's current state, or None if there is no such Lease."""
        _check_ref(lease)
        seen = self._read(lease, "getting")
        return seen.state if seen is not None else None

    def list_locks(self, txn: str | None = None, *, namespace: str | None = None) -> list[LeaseState]:
        """Locks (of this profile's layout) in ``namespace`` or everywhere, optionally of one txn.

        >>> [s.name for s in manager.list_locks("t42")]  # doctest: +SKIP
        ['lg.deployment.web.apps']
        """
        label = self.settings.lock_profile.txn_label
        selector = f"{label}={validate_txn(txn)}" if txn is not None else label
        where = LeaseRef(namespace, "list") if namespace else LeaseRef("all-namespaces", "list")

        def call() -> Any:
            if namespace:
                return self._leases.list_namespaced_lease(
                    namespace, label_selector=selector, **self._wire
                )
            return self._leases.list_lease_for_all_namespaces(
                label_selector=selector, **self._wire
            )

        reply = self._call("listing", where, call)
        states = [LeaseState.from_json(item) for item in reply.body.get("items") or []]
        return sorted(states, key=lambda s: (s.namespace, s.name))

    # -- the steps ---------------------------------------------------------

    def _acquire_once(self, key: ResourceKey, ref: LeaseRef, ask: _Ask) -> LeaseRef:
        """Create the Lease; if it exists, renew it (ours) or take it over (expired), conditionally."""
        current: _Seen | None = None
        for _ in range(_MAX_ROUNDS):
            if current is None:
                if self._create(key, ref, ask):
                    return ref
                current = self._read(ref, "getting")
                if current is None:
                    continue  # released between our create and read: create again
            if self._replace(key, ref, ask, current.state):
                return ref
            # Someone wrote in between (409) or deleted it (404): judge what is there now.
            current = self._read(ref, "getting")
        holder = current.state.holder if current is not None else ""
        raise AlreadyLockedError(ref.name, holder, namespace=ref.namespace)

    def _create(self, key: ResourceKey, ref: LeaseRef, ask: _Ask) -> bool:
        """POST the Lease; False if it exists already (409)."""
        body = _lease_model(self._body(key, ref, ask.txn, ask.seconds, members=ask.members))
        created = self._call("creating", ref, lambda: self._leases.create_namespaced_lease(
            ref.namespace, body, **self._wire), expect=(409,))
        if created.ok:
            self._remember(ref, created.body)
        return created.ok

    def _replace(self, key: ResourceKey, ref: LeaseRef, ask: _Ask, state: LeaseState) -> bool:
        """Renew our lock or take over an expired one (a PUT on the version read); False on 404/409.

        Raises AlreadyLockedError while another transaction's lock is live.
        """
        txn, mine = ask.txn, state.held_by(ask.txn)
        if not mine and state.is_live(self._clock(), self.settings.clock_skew_seconds):
            raise AlreadyLockedError(ref.name, state.holder, namespace=ref.namespace,
                                     expires_in_seconds=self._blocked_for(state))
        # Our own live lock keeps its acquireTime (and, unless given, its members);
        # a takeover starts a new one.
        ours = mine and self._holder_live(state)
        if ours and ask.members is not None and state.members is None:
            raise MembersError(",".join(ask.members.specs()), f"the lock {ref} is already held by {txn!r} "
                               "without members: whether a lock is identity-bound is chosen at its acquire")
        members = ask.members if ask.members is not None or not ours else state.members
        body = _lease_model(self._body(key, ref, txn, ask.seconds, acquire_time=state.acquire_time if ours else None,
                                       resource_version=state.resource_version, members=members))
        replaced = self._call("renewing" if mine else "taking over", ref, lambda: self._leases.replace_namespaced_lease(
            ref.name, ref.namespace, body, **self._wire), expect=(404, 409))
        if replaced.ok:
            self._remember(ref, replaced.body)
        return replaced.ok

    def _patch_renew(self, lease: LeaseRef, txn: str, seconds: int, renew_time_raw: str) -> _Reply:
        now = self._clock()
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/spec/holderIdentity", "value": txn},
            # renewTime changes on every write by anyone, so it pins the version we saw.
            {"op": "test", "path": "/spec/renewTime", "value": renew_time_raw or None},
            {"op": "replace", "path": "/spec/renewTime", "value": format_micro_time(now)},
            {"op": "replace", "path": "/spec/leaseDurationSeconds", "value": seconds},
        ]
        reply = self._call(
            "renewing",
            lease,
            lambda: self._leases.patch_namespaced_lease(
                lease.name, lease.namespace, ops,
                _content_type="application/json-patch+json", **self._wire,
            ),
            # A failed test op is 422 (Invalid) or 409; 404 is a deleted lease.
            expect=(404, 409, 422),
        )
        if reply.ok:
            self._remember(lease, reply.body)
        else:
            self._forget(lease)
        return reply

    def _delete_if_unchanged(self, lease: LeaseRef, seen: _Seen) -> bool:
        """Delete exactly the version seen; False if it changed since (409)."""
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(
                resource_version=seen.state.resource_version or None, uid=seen.uid or None
            )
        )
        reply = self._call(
            "deleting",
            lease,
            lambda: self._leases.delete_namespaced_lease(
                lease.name, lease.namespace, body=options, **self._wire
            ),
            expect=(404, 409),
        )
        if reply.status == 409:
            self._forget(lease)
            return False
        self._forget(lease)
        return True

    def _read(self, lease: LeaseRef, op: LeaseOp) -> _Seen | None:
        reply = self._call(
            op,
            lease,
            lambda: self._leases.read_namespaced_lease(
                lease.name, lease.namespace, **self._wire
            ),
            expect=(404,),
        )
        if not reply.ok:
            self._forget(lease)
            return None
        return self._remember(lease, reply.body)

    def _call(
        self, op: LeaseOp, lease: LeaseRef, call: Callable[[], Any], *, expect: tuple[int, ...] = ()
    ) -> _Reply:
        """Run one API call; anticipated error statuses come back, others raise LeaseOpError."""
        try:
            response = call()
        except ApiException as exc:
            if exc.status in expect:
                return _Reply(status=int(exc.status), error=exc)
            raise LeaseOpError(op, lease.name, exc, namespace=lease.namespace) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise LeaseOpError(op, lease.name, exc, namespace=lease.namespace) from exc
        return _Reply(status=int(getattr(response, "status", 200)), body=json.loads(response.data))

    def _body(
        self,
        key: ResourceKey,
        ref: LeaseRef,
        txn: str,
        seconds: int,
        *,
        acquire_time: datetime | None = None,
        resource_version: str = "",
        members: Members | None = None,
    ) -> dict[str, Any]:
        return lease_body(
            namespace=ref.namespace,
            name=ref.name,
            key=key,
            txn=txn,
            duration_seconds=seconds,
            now=self._clock(),
            principal=self.principal(ref),
            profile=self.settings.profile,
            acquire_time=acquire_time,
            resource_version=resource_version,
            members=members,
        )

    def _holder_live(self, state: LeaseState) -> bool:
        # The holder gets no skew margin: it must stop trusting its lock first.
        return state.is_live(self._clock(), skew_seconds=0)

    def _blocked_for(self, state: LeaseState) -> float:
        """Seconds until others may take the lock over (expiry plus the skew margin)."""
        return max(0.0, state.seconds_left(self._clock()) + self.settings.clock_skew_seconds)

    # -- the per-lease cache -------------------------------------------------

    def _remember(self, lease: LeaseRef, obj: dict[str, Any]) -> _Seen:
        seen = _Seen.from_json(obj)
        with self._seen_lock:
            self._seen[lease] = seen
        return seen

    def _cached(self, lease: LeaseRef) -> _Seen | None:
        with self._seen_lock:
            return self._seen.get(lease)

    def _forget(self, lease: LeaseRef) -> None:
        with self._seen_lock:
            self._seen.pop(lease, None)


@dataclass(frozen=True)
class _Ask:
    """What one acquire asks for: the transaction, the lease in seconds, the members (None: not bound)."""

    txn: str
    seconds: int
    members: Members | None


class _Contended(Exception):
    """Other clients kept changing the lease for every retry we allowed."""

    def __init__(self, lease: LeaseRef) -> None:
        super().__init__(f"lease {lease} changed on every one of {_MAX_ROUNDS} attempts")


def _changed_members(state: LeaseState, add: Members, remove: Members) -> Members:
    """``state``'s members (its principal alone if it has none) with ``add`` and without ``remove``."""
    if state.members is None:
        raise MembersError(",".join(add.specs()), f"the lock {state.namespace}/{state.name} is not identity-bound: "
                           "whether it is is chosen at acquire (--member, --members-only; members=...)")
    base = state.members
    if state.principal in remove.users:
        raise MembersError(",".join(remove.specs()), f"the principal {state.principal!r} who acquired the "
                           "lock stays a member (release the lock instead)")
    changed = base.union(add).without(remove)
    if not changed.readable:
        raise MembersError(",".join(remove.specs()), "a lock keeps at least one member (release it instead)")
    return changed


def _lease_model(body: dict[str, Any]) -> Any:
    lease = client.V1Lease.from_dict(body)
    assert lease is not None
    return lease


def _check_key(key: ResourceKey) -> ResourceKey:
    if not isinstance(key, ResourceKey):
        raise InvalidKeyError(f"expected a ResourceKey, got {type(key).__name__}")
    return key


def _check_ref(lease: LeaseRef) -> LeaseRef:
    if not isinstance(lease, LeaseRef):
        raise InvalidKeyError(f"expected a LeaseRef, got {type(lease).__name__}")
    return lease
