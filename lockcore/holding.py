"""Hold locks for the length of a ``with`` block, renewed in the background.

:func:`hold` acquires one or several locks all-or-nothing, in the sorted order
of their Lease references: two transactions that want overlapping sets always
try them in the same order, so neither can sit on one lock while waiting for
the other's. If any acquire fails, the locks already taken are released before
the error propagates.

While the block runs, a daemon thread renews every lock each ``renew_every``
seconds (a third of the lease by default), and a second one watches the
leases run out. A transient API failure is retried on the next tick as long as
the lease, by the holder's own clock (counted from when the last successful
renewal was sent), has not yet run out; when a lock is lost (taken over, deleted by ``force-release``, or
expired because renewals kept failing), :attr:`HeldLocks.lost` is set, the
``on_lost`` callback runs once, and leaving the block raises
:class:`LockLostError` (unless the block already raised). The locks are
released on exit in every case.

Example::

    >>> keys = [ResourceKey("apps", "Deployment", "shop", "web"),
    ...         ResourceKey("", "ConfigMap", "shop", "web-config")]
    >>> with hold(manager, keys, txn="t42", ttl=30) as held:  # doctest: +SKIP
    ...     for step in migration:
    ...         held.check()          # raises LockLostError once a lock is gone
    ...         step()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Protocol

from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.errors import LeaseOpError, LockError
from lockcore.lease import lease_seconds
from lockcore.manager import Manager, MemberSpecs, Timeout
from lockcore.naming import LeaseRef, ResourceKey, validate_txn


class LockHolder(Manager, Protocol):
    """A :class:`~lockcore.manager.Manager` that can say where a key's lock lives."""

    def ref_for(self, key: ResourceKey) -> LeaseRef: ...


class LockLostError(LockError):
    """A held lock was lost before the ``with`` block ended.

    ``lease`` is the first lock found lost; ``cause`` (also ``__cause__``) says why.
    """

    def __init__(self, lease: LeaseRef, cause: BaseException) -> None:
        self.lease = lease
        self.cause = cause
        super().__init__(f"lost the lock {lease}: {cause}")


class HeldLocks:
    """Hold locks on ``keys`` for ``txn`` while a ``with`` block runs (see module doc).

    Also available as :func:`hold`::

        >>> with hold(manager, [key], "t42", ttl=30, wait=10) as held:  # doctest: +SKIP
        ...     held.lost.is_set()
        False
        >>> with hold(manager, [key], "t42", ttl=30, members=["user:bob"]):  # doctest: +SKIP
        ...     ...                   # only alice (who acquires) and bob may write key

    ``members`` makes the locks identity-bound (see :func:`acquire_all`).
    ``clock`` times the renewals and the leases' run-out (a fake one in tests).

    Attributes:
        refs: the Lease references, in acquisition (sorted) order.
        lost: set once any lock is lost.
        loss: the :class:`LockLostError` describing the first loss, if any.
    """

    def __init__(
        self,
        manager: LockHolder,
        keys: Iterable[ResourceKey],
        txn: str,
        ttl: Timeout,
        *,
        renew_every: float | None = None,
        on_lost: Callable[[LockLostError], None] | None = None,
        wait: float | None = None,
        raise_on_loss: bool = True,
        fence: bool = True,
        members: MemberSpecs | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._manager = manager
        self._clock = clock
        self.txn = validate_txn(txn)
        self.ttl = ttl
        self._ttl_seconds = lease_seconds(ttl)
        self._interval = renew_every if renew_every is not None else self._ttl_seconds / 3
        if not 0 < self._interval < self._ttl_seconds:
            raise ValueError(
                f"renew_every must be between 0 and the lease ({self._ttl_seconds}s), "
                f"got {self._interval}"
            )
        self._keys = _keys_by_lease(manager, keys)
        self.refs: tuple[LeaseRef, ...] = tuple(sorted(self._keys))
        self._wait = wait
        self._fence = fence
        self._members = members
        self._on_lost = on_lost
        self._raise_on_loss = raise_on_loss
        self.lost = threading.Event()
        self.loss: LockLostError | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._renewed_at: dict[LeaseRef, float] = {}
        self._loss_lock = threading.Lock()
        self._last_error: dict[LeaseRef, LeaseOpError] = {}

    def __enter__(self) -> HeldLocks:
        _acquire_in_order(self._manager, self._keys, self.txn, self.ttl, wait=self._wait, fence=self._fence,
                          members=self._members, on_acquired=self._renewed_at.__setitem__, clock=self._clock)
        self._threads = [
            threading.Thread(target=loop, name=f"lockcore-{role}-{self.txn}", daemon=True)
            for role, loop in (("renew", self._renew_loop), ("watch", self._watch_loop))
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        try:
            self._manager.release_all(self.refs, self.txn)
        except LockError:
            if exc is None:
                raise
        if exc is None and self.loss is not None and self._raise_on_loss:
            raise self.loss

    def check(self) -> None:
        """Raise :class:`LockLostError` if any lock has been lost.

        Also judged here, not only in the renewal thread: a lock whose last
        successful renewal is a full lease ago is lost even if the thread is
        still stuck in a call to an unresponsive API server.
        """
        if self.loss is None:
            self._mark_run_out(self._clock.monotonic())
        if self.loss is not None:
            raise self.loss

    def _mark_run_out(self, now: float) -> bool:
        """Mark the first lock whose lease ran out by the holder's own clock as lost."""
        for ref in self.refs:
            if now >= self._renewed_at[ref] + self._ttl_seconds:
                # The last API error, if any, says why the renewals failed.
                self._mark_lost(ref, self._last_error.get(ref) or _RanOut(ref, self._ttl_seconds))
                return True
        return False

    def _renew_loop(self) -> None:
        while not self._clock.wait(self._stop, self._interval) and self.loss is None:
            for ref in self.refs:
                if self._stop.is_set():
                    return
                error = self._renew(ref)
                if error is not None:
                    self._mark_lost(ref, error)
                    return

    def _watch_loop(self) -> None:
        # Apart from the renewer, which may hang in a call to an unresponsive
        # API server: the loss is reported the moment the holder's own view of
        # a lease ends, not at the renewer's next tick.
        while self.loss is None:
            run_out = min(self._renewed_at.values()) + self._ttl_seconds
            if self._clock.wait(self._stop, max(0.0, run_out - self._clock.monotonic())):
                return
            self._mark_run_out(self._clock.monotonic())

    def _renew(self, ref: LeaseRef) -> BaseException | None:
        """Renew one lock; return the error that means it is lost, else None."""
        # The new renewTime is stamped before the request leaves, so the lease
        # is counted from here, not from when the answer came back.
        started = self._clock.monotonic()
        try:
            self._manager.renew(ref, self.txn, self.ttl)
        except LeaseOpError as exc:
            # The API may be briefly unreachable; the lock is still ours until
            # it runs out, which the loop watches.
            self._last_error[ref] = exc
            return None
        except LockError as exc:
            return exc
        self._renewed_at[ref] = started
        self._last_error.pop(ref, None)
        return None

    def _mark_lost(self, ref: LeaseRef, cause: BaseException) -> None:
        with self._loss_lock:
            if self.loss is not None:
                return
            loss = LockLostError(ref, cause)
            loss.__cause__ = cause
            self.loss = loss
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost(loss)


def acquire_all(
    manager: LockHolder,
    keys: Iterable[ResourceKey],
    txn: str,
    ttl: Timeout,
    *,
    wait: float | None = None,
    on_acquired: Callable[[LeaseRef, float], None] | None = None,
    fence: bool = True,
    members: MemberSpecs | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[LeaseRef]:
    """Lock every key for ``txn``, all or nothing, in sorted Lease order.

    Two transactions that want overlapping sets always try them in the same
    order, so neither can sit on one lock while waiting for the other's. If
    any acquire fails, the locks already taken are released before the error
    propagates. ``on_acquired(ref, started)`` gets the ``clock``'s monotonic
    time each acquire was *sent*, from which its lease counts. ``members`` makes every
    lock identity-bound (:meth:`lockcore.manager.LeaseManager.acquire`).

    >>> refs = acquire_all(manager, [web, config], "t42", ttl=600)  # doctest: +SKIP
    >>> refs = acquire_all(manager, [web], "t42", ttl=600, members=["group:sre"])  # doctest: +SKIP
    """
    return _acquire_in_order(manager, _keys_by_lease(manager, keys), txn, ttl, wait=wait, fence=fence,
                             members=members, on_acquired=on_acquired, clock=clock)


def _acquire_in_order(
    manager: LockHolder,
    by_ref: Mapping[LeaseRef, ResourceKey],
    txn: str,
    ttl: Timeout,
    *,
    wait: float | None,
    fence: bool,
    members: MemberSpecs | None,
    on_acquired: Callable[[LeaseRef, float], None] | None,
    clock: Clock,
) -> list[LeaseRef]:
    """:func:`acquire_all` for keys already mapped to their Leases."""
    taken: list[LeaseRef] = []
    try:
        for ref in sorted(by_ref):
            started = clock.monotonic()
            manager.acquire(by_ref[ref], txn, ttl, wait=wait, fence=fence, members=members)
            taken.append(ref)
            if on_acquired is not None:
                on_acquired(ref, started)
    except BaseException:
        # All-or-nothing: give back what we took; the acquire error is what matters.
        try:
            manager.release_all(taken, txn)
        except LockError:
            pass
        raise
    return taken


def _keys_by_lease(manager: LockHolder, keys: Iterable[ResourceKey]) -> dict[LeaseRef, ResourceKey]:
    """Each key under its Lease (keys naming one Lease collapse into one lock)."""
    by_ref = {manager.ref_for(key): key for key in keys}
    if not by_ref:
        raise ValueError("at least one resource key is needed")
    return by_ref


class _RanOut(LockError):
    """Renewals kept failing until the lease ran out by the holder's own clock."""

    def __init__(self, lease: LeaseRef, ttl_seconds: int) -> None:
        self.lease = lease
        super().__init__(f"no successful renewal of {lease} within its {ttl_seconds}s lease")


# ``with hold(manager, keys, "t42", ttl=30) as held:`` reads as the verb it is;
# the class is the one definition of its parameters.
hold = HeldLocks
