"""The lock manager: acquire, renew and release Lease locks, race-free.

:class:`LeaseManager` implements the reference ``Manager`` API on
``coordination.k8s.io/v1`` Leases. It validates what callers pass (before any
API call), resolves who is asking, and composes three collaborators:

* :class:`~lockcore.algorithm.LockAlgorithm` decides what to write (create,
  renew, take over an expired lock, refuse a live one, wait);
* :class:`~lockcore.store.LeaseStore` beneath it makes every write
  conditional, so concurrent clients can never both believe they hold one
  lock: a create, a PUT on the ``resourceVersion`` read, a JSON patch testing
  holder and ``renewTime``, a DELETE with ``resourceVersion`` and ``uid``
  preconditions;
* :class:`~lockcore.fence.Fence` stamps the locked object after the Lease is
  won and removes the stamp after it is deleted.

One :class:`~lockcore.clock.Clock` serves the algorithm and the fence.

Example::

    >>> m = LeaseManager(settings=LockSettings(lock_namespace="locks"))  # doctest: +SKIP
    >>> key = ResourceKey(group="apps", kind="Deployment", namespace="shop", name="web")
    >>> ref = m.acquire(key, "t42", timeout=600)  # doctest: +SKIP
    >>> ref.name  # the lease name, what the reference API returns  # doctest: +SKIP
    'lg.deployment.web.apps'
    >>> m.release(ref, "t42")  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Protocol

import urllib3
from kubernetes.client.exceptions import ApiException

from lockcore.algorithm import Ask, LockAlgorithm
from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.connect import api_client_from
from lockcore.errors import LeaseOpError, LockError
from lockcore.fence import Fence, FenceError
from lockcore.identity import Principal
from lockcore.lease import LeaseState, lease_seconds
from lockcore.members import Members, MembersError
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey, lease_ref, validate_txn
from lockcore.released import Released
from lockcore.resources import Discovery
from lockcore.settings import LockSettings
from lockcore.store import LeaseStore

Timeout = float | timedelta
# Who belongs to an identity-bound lock: a Members value or specs ("user:alice",
# "group:sre", "sa:shop:deployer"); an empty list means the acquiring user alone.
MemberSpecs = Members | Iterable[str]


class Manager(Protocol):
    """The reference lock API (translated from the Go ``Manager`` interface)."""

    def acquire(
        self, key: ResourceKey, txn: str, timeout: Timeout, *, wait: float | None = None,
        fence: bool = True, members: MemberSpecs | None = None,
    ) -> LeaseRef: ...

    def release(self, lease: LeaseRef, txn: str) -> None: ...

    def release_all(self, leases: Iterable[LeaseRef], txn: str) -> None: ...

    def renew(self, lease: LeaseRef, txn: str, timeout: Timeout) -> None: ...


class LeaseManager:
    """Lease locks on ``coordination.k8s.io/v1``; safe to share between threads.

    Args:
        api_client: an official-client ``ApiClient``; None loads the kubeconfig
            (or the in-cluster config), as kubectl would.
        settings: the lock settings shared with the webhook; None reads
            ``LEASEGATE_*`` from the environment.
        principal: the Kubernetes username to record on acquired Leases; None
            asks the API server once (a SelfSubjectReview) on first acquire.
        clock: the :class:`~lockcore.clock.Clock` for ``renewTime``, expiry and
            the ``wait`` loop (tests inject a fake one); the system clock by default.
        rng: the random source of the ``wait`` loop's jitter.
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
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        request_timeout: float = 10.0,
        discovery: Discovery | None = None,
    ) -> None:
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be positive, got {request_timeout!r}")
        self.request_timeout = request_timeout
        self.api_client = api_client if api_client is not None else api_client_from()
        self.settings = settings if settings is not None else LockSettings.from_env()
        self.clock = clock
        self._identity = Principal(self.api_client, known=principal, timeout=request_timeout)
        self._store = LeaseStore(self.api_client, request_timeout=request_timeout)
        self._algorithm = LockAlgorithm(self._store, self.settings, clock=clock, rng=rng)
        self._fence = Fence(self.api_client, request_timeout=request_timeout, discovery=discovery, clock=clock)
        self._fences = self.settings.lock_profile.fences

    # -- public API --------------------------------------------------------

    def ref_for(self, key: ResourceKey) -> LeaseRef:
        """Where the lock for ``key`` lives under this manager's settings."""
        return lease_ref(_check_key(key), self.settings)

    def principal(self, lease: LeaseRef | None = None) -> str:
        """The caller's Kubernetes username (asked once, then cached)."""
        try:
            return self._identity.name()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise LeaseOpError("creating", lease.name if lease else "", exc,
                               namespace=lease.namespace if lease else "") from exc

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
        ask = self._ask(key, validate_txn(txn), timeout, wait, members)
        self._algorithm.acquire(ask, wait)
        if fence and self._fences:
            self._fence_or_give_back(key, ask.ref, txn, ask.principal)
        return ask.ref

    def _ask(self, key: ResourceKey, txn: str, timeout: Timeout, wait: float | None,
             members: MemberSpecs | None) -> Ask:
        """What acquiring ``key`` asks for, all checked before the first API call (asking who we are)."""
        seconds, ref = lease_seconds(timeout), self.ref_for(key)
        if wait is not None and wait < 0:
            raise ValueError(f"wait must be >= 0 seconds, got {wait!r}")
        bound = self._members(members)
        principal = self.principal(ref)
        return Ask(key, ref, txn, seconds, bound.with_user(principal) if bound is not None else None, principal)

    def _fence_or_give_back(self, key: ResourceKey, ref: LeaseRef, txn: str, principal: str) -> None:
        """Stamp ``key`` and wait for its reservation; on failure release the Lease (nothing half-locked)."""
        try:
            self._fence.stamp(key, txn, principal)
            self._fence.await_reservation(key, ref)
        except FenceError:
            self.release(ref, txn, unstamp=False)
            raise

    def _members(self, members: MemberSpecs | None) -> Members | None:
        if members is None:
            return None
        if not self.settings.lock_profile.records_principal:
            raise MembersError(str(members), f"the {self.settings.profile.value} profile's Leases have no members")
        return members if isinstance(members, Members) else Members.of(members)

    def renew(self, lease: LeaseRef, txn: str, timeout: Timeout) -> None:
        """Extend the lock ``txn`` holds on ``lease`` to ``timeout`` from now.

        Raises :class:`LockExpiredError` if the Lease is gone or expired in the
        holder's own view (``renewTime + leaseDurationSeconds`` passed), and
        :class:`AlreadyLockedError` if another transaction holds it.

        >>> manager.renew(ref, "t42", 600)  # doctest: +SKIP
        """
        validate_txn(txn)
        seconds = lease_seconds(timeout)
        self._algorithm.renew(_check_ref(lease), txn, seconds)

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
        return self._algorithm.change_members(lease, txn, adding, removing)

    def release(self, lease: LeaseRef, txn: str, *, unstamp: bool = True) -> None:
        """Delete the lock if ``txn`` holds it; a no-op if it is gone or someone else's.

        The delete carries ``resourceVersion`` and ``uid`` preconditions, so a
        lease taken over after it was read is never deleted. Then the marker
        is removed if it still names ``txn`` (a newer holder's is left alone);
        the Lease goes first, so the webhook never sees a live lock on an
        unmarked object. A marker that cannot be removed stays, harmless.
        :meth:`release_reporting` says which of these happened.

        >>> manager.release(ref, "t42")  # doctest: +SKIP
        """
        self.release_reporting(lease, txn, unstamp=unstamp)

    def release_reporting(self, lease: LeaseRef, txn: str, *, unstamp: bool = True) -> Released:
        """:meth:`release`, saying what it did: released, or not held by ``txn`` (and by whom).

        >>> manager.release_reporting(ref, "t42").describe()  # doctest: +SKIP
        'not held by t42 (held by t7)'
        """
        validate_txn(txn)
        deleted, holder = self._algorithm.delete_held(_check_ref(lease), txn)
        if unstamp and deleted is not None and deleted.resource is not None and self._fences:
            self._fence.unstamp_quietly(deleted.resource, txn)
            self._fence.await_reservation_quietly(deleted.resource, lease)
        return Released(lease, txn, released=deleted is not None, holder=holder)

    def release_all(self, leases: Iterable[LeaseRef], txn: str) -> None:
        """Release every lease, then raise the first error met, if any.

        >>> manager.release_all([ref_a, ref_b], "t42")  # doctest: +SKIP
        """
        self.release_each(leases, txn)

    def release_each(self, leases: Iterable[LeaseRef], txn: str) -> list[Released]:
        """:meth:`release_all`, saying what it did to each lease (in order).

        >>> [r.describe() for r in manager.release_each([ref_a, ref_b], "t42")]  # doctest: +SKIP
        ['released', 'not held by t42 (no lock)']
        """
        first: LockError | None = None
        outcomes: list[Released] = []
        for lease in leases:
            try:
                outcomes.append(self.release_reporting(lease, txn))
            except LockError as exc:
                first = first or exc
        if first is not None:
            raise first
        return outcomes

    def force_release(self, lease: LeaseRef) -> bool:
        """Delete the lock whoever holds it (an operator's override), then its marker.

        Returns False if there was no such Lease. While the lock is live the
        webhook lets only its principal or a lock admin group delete it.

        >>> manager.force_release(LeaseRef("shop", "lg.deployment.web.apps"))  # doctest: +SKIP
        True
        """
        current = self._store.get(_check_ref(lease))
        deleted = self._store.delete(lease)
        if current is not None:
            self._unmark(current.state)
        return deleted

    def release_expired(self, lease: LeaseRef) -> bool:
        """Delete a lock that expired without being released (past the skew margin), then its marker.

        Returns False, deleting nothing, if the lock is live, gone, or changed
        since it was read (taken over in between). Anyone may: the webhook
        lets anyone delete an expired lock. It is how a crashed holder's
        reservation stops refusing creates of its name (``kubectl lock prune --apply``).

        >>> manager.release_expired(LeaseRef("shop", "lg.configmap.cfg"))  # doctest: +SKIP
        True
        """
        seen = self._store.get(_check_ref(lease))
        if seen is None or seen.state.is_live(self.clock.now(), self.settings.clock_skew_seconds):
            return False
        if not self._store.delete_if_unchanged(lease, seen):
            return False
        self._unmark(seen.state)
        return True

    def _unmark(self, deleted: LeaseState) -> None:
        """Remove the marker a deleted lock left on its object, if it still names that lock's holder."""
        if deleted.resource is not None and self._fences:
            self._fence.unstamp_quietly(deleted.resource, deleted.holder)

    def get_lock(self, lease: LeaseRef) -> LeaseState | None:
        """The lock's current state, or None if there is no such Lease."""
        seen = self._store.get(_check_ref(lease))
        return seen.state if seen is not None else None

    def list_locks(self, txn: str | None = None, *, namespace: str | None = None) -> list[LeaseState]:
        """Locks (of this profile's layout) in ``namespace`` or everywhere, optionally of one txn.

        >>> [s.name for s in manager.list_locks("t42")]  # doctest: +SKIP
        ['lg.deployment.web.apps']
        """
        label = self.settings.lock_profile.txn_label
        selector = f"{label}={validate_txn(txn)}" if txn is not None else label
        return sorted(self._store.list_leases(selector, namespace), key=lambda s: (s.namespace, s.name))


def _check_key(key: ResourceKey) -> ResourceKey:
    if not isinstance(key, ResourceKey):
        raise InvalidKeyError(f"expected a ResourceKey, got {type(key).__name__}")
    return key


def _check_ref(lease: LeaseRef) -> LeaseRef:
    if not isinstance(lease, LeaseRef):
        raise InvalidKeyError(f"expected a LeaseRef, got {type(lease).__name__}")
    return lease
