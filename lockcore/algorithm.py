"""The lock algorithm: what to write to a lock Lease, decided over a store and a clock.

:class:`LockAlgorithm` is what client-go's ``LeaderElector`` is to its
``resourcelock``: it reads a Lease through a :class:`~lockcore.store.LockStore`,
judges it with :class:`~lockcore.lease.LeaseState` at the time an injected
:class:`~lockcore.clock.Clock` says, and asks the store for a conditional
write. It makes no API call itself, so it runs as well on an in-memory store
and a fake clock.

* acquire creates the Lease; if it exists it is renewed (same transaction) or
  taken over (expired, past the skew margin) by a PUT on the version read;
  while another transaction's lock is live it refuses, or with ``wait``
  retries with jittered exponential backoff until the deadline;
* renew patches ``renewTime`` if the transaction still holds the version seen;
* the holder judges its own lock with no skew margin (it must stop trusting
  it first); others add ``clock_skew_seconds``.

Someone else's write between our read and our write refuses ours (409), and
the round starts again from a fresh read, at most :data:`MAX_ROUNDS` times.

Example::

    >>> algorithm = LockAlgorithm(LeaseStore(api, request_timeout=10), settings)  # doctest: +SKIP
    >>> algorithm.acquire(Ask(key, ref, "t42", 600, None, "alice"), wait=10)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.errors import AlreadyLockedError, LeaseOp, LeaseOpError, LockExpiredError
from lockcore.lease import LeaseState, lease_body
from lockcore.members import Members, MembersError
from lockcore.naming import LeaseRef, ResourceKey
from lockcore.settings import LockSettings
from lockcore.store import LockStore, Seen

__all__ = ["MAX_ROUNDS", "Ask", "LockAlgorithm", "changed_members"]
# Rounds of read-and-retry when other clients keep changing a lease under us.
# Each round means someone else made progress, so this bounds only our retries.
MAX_ROUNDS = 4
BACKOFF_START = 0.05
BACKOFF_CAP = 2.0


@dataclass(frozen=True)
class Ask:
    """What one acquire asks for: the lock, the transaction, the lease in seconds, the members, who asks.

    ``members`` None: the lock is not identity-bound (or, re-acquiring one's
    own live lock, keeps the members it has).
    """

    key: ResourceKey
    ref: LeaseRef
    txn: str
    seconds: int
    members: Members | None
    principal: str


class LockAlgorithm:
    """Acquire, renew, change members of and delete lock Leases through ``store``; thread-safe as the store is.

    Arguments are validated by the caller (:class:`~lockcore.manager.LeaseManager`).
    """

    def __init__(self, store: LockStore, settings: LockSettings, *, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()

    def acquire(self, ask: Ask, wait: float | None) -> None:
        """Take or renew the lock; while another's is live raise AlreadyLockedError, or retry until ``wait`` passes."""
        if wait is None:
            return self._acquire_once(ask)
        deadline = self._clock.monotonic() + wait
        delay = BACKOFF_START
        while True:
            try:
                return self._acquire_once(ask)
            except AlreadyLockedError:
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    raise
                # Jitter spreads waiters that were refused together apart in time.
                self._clock.sleep(min(remaining, self._rng.uniform(delay / 2, delay)))
                delay = min(delay * 2, BACKOFF_CAP)

    def renew(self, lease: LeaseRef, txn: str, seconds: int) -> None:
        """Extend ``txn``'s lock to ``seconds`` from now; raise as :meth:`held` judges when it is not ``txn``'s."""
        seen = self._store.cached(lease)
        if seen is not None and seen.state.held_by(txn) and self.holder_live(seen.state):
            if self._store.patch_renew(lease, txn, seen, self._clock.now(), seconds):
                return
        for _ in range(MAX_ROUNDS):
            current = self._held(lease, txn, "renewing")
            if self._store.patch_renew(lease, txn, current, self._clock.now(), seconds):
                return
        raise _contended("renewing", lease)

    def change_members(self, lease: LeaseRef, txn: str, add: Members, remove: Members) -> Members:
        """Add and remove members of ``txn``'s live lock; returns the members now."""
        for _ in range(MAX_ROUNDS):
            state = self.held(lease, txn)
            changed = changed_members(state, add, remove)
            if self._store.patch_members(lease, txn, state, changed):
                return changed
        raise _contended("changing members", lease)

    def held(self, lease: LeaseRef, txn: str) -> LeaseState:
        """The Lease read now if ``txn`` holds it live (holder's view); else raise AlreadyLocked or LockExpired."""
        return self._held(lease, txn, "getting").state

    def delete_held(self, lease: LeaseRef, txn: str) -> tuple[LeaseState | None, str]:
        """Delete the Lease if ``txn`` holds it: (the state deleted, or None; the other holder found, or "")."""
        seen = self._store.cached(lease)
        if seen is not None and seen.state.held_by(txn):
            if self._store.delete_if_unchanged(lease, seen):
                return seen.state, ""
        for _ in range(MAX_ROUNDS):
            current = self._store.get(lease, "deleting")
            if current is None or not current.state.held_by(txn):
                self._store.forget(lease)
                return None, current.state.holder if current is not None else ""
            if self._store.delete_if_unchanged(lease, current):
                return current.state, ""
        raise _contended("deleting", lease)

    def holder_live(self, state: LeaseState) -> bool:
        """Whether the holder may still trust ``state``: no skew margin, it must stop trusting first."""
        return state.is_live(self._clock.now(), skew_seconds=0)

    def blocked_for(self, state: LeaseState) -> float:
        """Seconds until others may take the lock over (expiry plus the skew margin)."""
        return max(0.0, state.seconds_left(self._clock.now()) + self._settings.clock_skew_seconds)

    # -- the steps ---------------------------------------------------------

    def _held(self, lease: LeaseRef, txn: str, op: LeaseOp) -> Seen:
        current = self._store.get(lease, op)
        if current is None:
            raise LockExpiredError(lease.name, namespace=lease.namespace)
        state = current.state
        if not state.held_by(txn):
            self._store.forget(lease)
            raise AlreadyLockedError(lease.name, state.holder, namespace=lease.namespace,
                                     expires_in_seconds=self.blocked_for(state))
        if not self.holder_live(state):
            raise LockExpiredError(lease.name, namespace=lease.namespace)
        return current

    def _acquire_once(self, ask: Ask) -> None:
        """Create the Lease; if it exists, renew it (ours) or take it over (expired), conditionally."""
        current: Seen | None = None
        for _ in range(MAX_ROUNDS):
            if current is None:
                if self._store.create(ask.ref, self._body(ask, ask.members)):
                    return
                current = self._store.get(ask.ref)
                if current is None:
                    continue  # released between our create and read: create again
            if self._replace(ask, current.state):
                return
            # Someone wrote in between (409) or deleted it (404): judge what is there now.
            current = self._store.get(ask.ref)
        holder = current.state.holder if current is not None else ""
        raise AlreadyLockedError(ask.ref.name, holder, namespace=ask.ref.namespace)

    def _replace(self, ask: Ask, state: LeaseState) -> bool:
        """Renew our lock or take over an expired one (a PUT on the version read); False on 404/409.

        Raises AlreadyLockedError while another transaction's lock is live.
        """
        ref, mine = ask.ref, state.held_by(ask.txn)
        if not mine and state.is_live(self._clock.now(), self._settings.clock_skew_seconds):
            raise AlreadyLockedError(ref.name, state.holder, namespace=ref.namespace,
                                     expires_in_seconds=self.blocked_for(state))
        # Our own live lock keeps its acquireTime (and, unless given, its members);
        # a takeover starts a new one.
        ours = mine and self.holder_live(state)
        if ours and ask.members is not None and state.members is None:
            raise MembersError(",".join(ask.members.specs()), f"the lock {ref} is already held by {ask.txn!r} "
                               "without members: whether a lock is identity-bound is chosen at its acquire")
        members = ask.members if ask.members is not None or not ours else state.members
        body = self._body(ask, members, acquire_time=state.acquire_time if ours else None,
                          resource_version=state.resource_version)
        return self._store.replace(ref, body, "renewing" if mine else "taking over")

    def _body(self, ask: Ask, members: Members | None, *, acquire_time: datetime | None = None,
              resource_version: str = "") -> dict[str, Any]:
        """The Lease ``ask`` writes (``resource_version``: a PUT on the version read)."""
        return lease_body(namespace=ask.ref.namespace, name=ask.ref.name, key=ask.key, txn=ask.txn,
                          duration_seconds=ask.seconds, now=self._clock.now(), principal=ask.principal,
                          profile=self._settings.profile, acquire_time=acquire_time,
                          resource_version=resource_version, members=members)


def changed_members(state: LeaseState, add: Members, remove: Members) -> Members:
    """``state``'s members with ``add`` and without ``remove``; its principal and one member always stay."""
    if state.members is None:
        raise MembersError(",".join(add.specs()), f"the lock {state.namespace}/{state.name} is not identity-bound: "
                           "whether it is is chosen at acquire (--member, --members-only; members=...)")
    if state.principal in remove.users:
        raise MembersError(",".join(remove.specs()), f"the principal {state.principal!r} who acquired the "
                           "lock stays a member (release the lock instead)")
    changed = state.members.union(add).without(remove)
    if not changed.readable:
        raise MembersError(",".join(remove.specs()), "a lock keeps at least one member (release it instead)")
    return changed


def _contended(op: LeaseOp, lease: LeaseRef) -> LeaseOpError:
    return LeaseOpError(op, lease.name, _Contended(lease), namespace=lease.namespace)


class _Contended(Exception):
    """Other clients kept changing the lease for every retry we allowed."""

    def __init__(self, lease: LeaseRef) -> None:
        super().__init__(f"lease {lease} changed on every one of {MAX_ROUNDS} attempts")
