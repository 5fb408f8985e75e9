"""hold()'s renewal and loss policy on a fake clock, against an in-memory LockHolder.

The manager here is a plain test double of lockcore's own ``LockHolder``
interface (this tests the holding algorithm, not Kubernetes), and time is a
:class:`~tests.support.clock.FakeClock` the test advances: a renewal every
interval, a loss the moment the lease runs out by the holder's clock, all in
milliseconds of real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

import pytest

from lockcore.errors import AlreadyLockedError, LeaseOpError, LockError
from lockcore.holding import HeldLocks, LockLostError, acquire_all, hold
from lockcore.manager import MemberSpecs
from lockcore.naming import LeaseRef, ResourceKey
from tests.support.clock import FakeClock

KEY = ResourceKey("", "ConfigMap", "ns", "a")
REF = LeaseRef("ns", "a")
BOTH_THREADS = 2  # the renewer and the run-out watch


class FakeHolder:
    """An in-memory LockHolder: renew fails with ``failure`` while it is set; records what it is asked."""

    def __init__(self, failure: LockError | None = None) -> None:
        self.failure = failure
        self.renewals: list[LeaseRef] = []
        self.acquired: list[LeaseRef] = []
        self.released: list[LeaseRef] = []

    def ref_for(self, key: ResourceKey) -> LeaseRef:
        return LeaseRef(key.namespace, key.name)

    def acquire(self, key: ResourceKey, txn: str, timeout: float | timedelta, *, fence: bool = True,
                wait: float | None = None, members: MemberSpecs | None = None) -> LeaseRef:
        self.acquired.append(self.ref_for(key))
        return self.ref_for(key)

    def renew(self, lease: LeaseRef, txn: str, timeout: float | timedelta) -> None:
        if self.failure is not None:
            raise self.failure
        self.renewals.append(lease)

    def release(self, lease: LeaseRef, txn: str) -> None:
        self.released.append(lease)

    def release_all(self, leases: Iterable[LeaseRef], txn: str) -> None:
        for lease in leases:
            self.release(lease, txn)


def outage() -> LeaseOpError:
    return LeaseOpError("renewing", "a", ConnectionError("apiserver down"), namespace="ns")


def step(clock: FakeClock, seconds: float, *, after: int = BOTH_THREADS) -> None:
    """Advance fake time, then wait until the threads have done what was due and wait again."""
    clock.await_waiters(BOTH_THREADS)
    clock.advance(seconds)
    clock.await_waiters(after)


def test_locks_are_renewed_every_interval_as_time_passes() -> None:
    clock, m = FakeClock(), FakeHolder()
    with hold(m, [KEY, ResourceKey("", "ConfigMap", "ns", "b")], "t", 30, renew_every=10, clock=clock) as held:
        step(clock, 5)
        assert m.renewals == [], "renewed before the interval"
        step(clock, 5)
        assert m.renewals == [REF, LeaseRef("ns", "b")]
        for _ in range(9):  # three leases' worth: renewed, never lost
            step(clock, 10)
        assert len(m.renewals) == 2 * 10
        held.check()
        assert not held.lost.is_set()
    assert m.released == [REF, LeaseRef("ns", "b")]


def test_failing_renewals_past_the_ttl_mean_loss_with_the_cause_chained() -> None:
    clock, m = FakeClock(), FakeHolder()
    lost: list[LockLostError] = []
    with pytest.raises(LockLostError) as on_exit:
        with hold(m, [KEY], "t", 30, renew_every=10, clock=clock, on_lost=lost.append) as held:
            step(clock, 10)  # renewed: the lease now runs to t=40
            m.failure = outage()
            step(clock, 10)  # t=20: failed, tolerated
            step(clock, 19)  # t=39: failed, tolerated, the lease still runs
            held.check()
            assert not held.lost.is_set()
            clock.await_waiters(BOTH_THREADS)
            clock.advance(1)  # t=40: the lease ran out by the holder's clock
            with pytest.raises(LockLostError) as checked:
                held.check()
            assert held.lost.wait(2)
    loss = checked.value
    assert loss.lease == REF and isinstance(loss.cause, LeaseOpError) and loss.__cause__ is loss.cause
    assert on_exit.value is held.loss and lost == [held.loss]
    assert m.released == [REF], "released on exit even after a loss"


def test_transient_errors_within_the_lease_are_survived() -> None:
    clock, m = FakeClock(), FakeHolder(failure=outage())
    with hold(m, [KEY], "t", 35, renew_every=10, clock=clock) as held:
        step(clock, 10)
        step(clock, 10)  # two failures: the lease (from t=0) still runs until t=35
        m.failure = None
        step(clock, 10)  # t=30: renewed, the lease now runs to t=65
        step(clock, 10)  # t=40: past the first lease's end, still held
        held.check()
        assert not held.lost.is_set() and m.renewals == [REF, REF]
    assert m.released == [REF]


def test_a_lock_taken_over_is_lost_at_the_next_renewal() -> None:
    clock, m = FakeClock(), FakeHolder()
    held = hold(m, [KEY], "t", 30, renew_every=10, clock=clock, raise_on_loss=False)
    with held:
        m.failure = AlreadyLockedError("a", "t2", namespace="ns")
        clock.await_waiters(BOTH_THREADS)
        clock.advance(10)
        assert held.lost.wait(2)
        assert isinstance(held.loss, LockLostError) and isinstance(held.loss.__cause__, AlreadyLockedError)
    assert m.released == [REF]


def test_loss_is_reported_when_the_lease_runs_out_not_a_tick_later() -> None:
    # Renewals every 19 s of a 20 s lease, all failing: the loss must surface
    # when the lease runs out (t=20), not at the next renewal tick (t=38).
    clock, m = FakeClock(), FakeHolder(failure=outage())
    held = hold(m, [KEY], "t", 20, renew_every=19, raise_on_loss=False, clock=clock)
    with held:
        step(clock, 19)
        step(clock, 0.5)
        assert not held.lost.is_set(), "reported lost while the lease was still running"
        clock.advance(0.5)
        assert held.lost.wait(2), "loss not reported when the lease ran out"


def test_check_reports_loss_while_the_renewer_hangs() -> None:
    # A renewal stuck in an unresponsive API server must not keep the lock
    # trusted past its lease: check() judges expiry itself.
    class Hanging(FakeHolder):
        def __init__(self) -> None:
            super().__init__()
            self.unblock = threading.Event()
            self.entered = threading.Event()

        def renew(self, lease: LeaseRef, txn: str, timeout: float | timedelta) -> None:
            self.entered.set()
            self.unblock.wait(10)

    clock, m = FakeClock(), Hanging()
    held = hold(m, [KEY], "t", 10, renew_every=2, raise_on_loss=False, clock=clock)
    with held:
        step(clock, 2, after=1)  # the renewer is in the call, only the watch waits on the clock
        assert m.entered.wait(2)
        held.check()  # still within the lease
        try:
            clock.advance(8)
            with pytest.raises(LockLostError) as checked:
                held.check()
            assert checked.value.lease == REF
        finally:
            m.unblock.set()


def test_acquire_times_count_from_when_each_acquire_was_sent() -> None:
    clock, started = FakeClock(), []

    class Slow(FakeHolder):
        def acquire(self, key: ResourceKey, txn: str, timeout: float | timedelta, *, fence: bool = True,
                    wait: float | None = None, members: MemberSpecs | None = None) -> LeaseRef:
            clock.advance(3)  # each acquire takes 3 s
            return super().acquire(key, txn, timeout, fence=fence, wait=wait, members=members)

    keys = [ResourceKey("", "ConfigMap", "ns", n) for n in "ba"]
    refs = acquire_all(Slow(), keys, "t", 30, clock=clock, on_acquired=lambda ref, at: started.append((ref, at)))
    assert refs == [REF, LeaseRef("ns", "b")]
    assert started == [(REF, 1000.0), (LeaseRef("ns", "b"), 1003.0)]


def test_partial_acquire_is_rolled_back() -> None:
    class Refusing(FakeHolder):
        def acquire(self, key: ResourceKey, txn: str, timeout: float | timedelta, *, fence: bool = True,
                    wait: float | None = None, members: MemberSpecs | None = None) -> LeaseRef:
            if key.name == "b":
                raise AlreadyLockedError("b", "other")
            return self.ref_for(key)

    m = Refusing()
    with pytest.raises(AlreadyLockedError):
        with hold(m, [ResourceKey("", "ConfigMap", "ns", n) for n in "cba"], "t", 5, clock=FakeClock()):
            raise AssertionError("must not enter")
    assert m.released == [REF]


@pytest.mark.parametrize("take", [hold, acquire_all])
def test_no_keys_is_refused_before_any_call(take: Callable[..., object]) -> None:
    m = FakeHolder()
    with pytest.raises(ValueError, match="at least one resource key"):
        take(m, [], "t", 10)
    assert m.acquired == [] and m.released == []


@pytest.mark.parametrize("every", [0, 10, 11, -1])
def test_the_renewal_interval_must_fall_within_the_lease(every: float) -> None:
    with pytest.raises(ValueError, match="renew_every must be between 0 and the lease"):
        HeldLocks(FakeHolder(), [KEY], "t", 10, renew_every=every)


def test_keys_naming_one_lease_are_one_lock() -> None:
    m = FakeHolder()
    twin = ResourceKey("", "ConfigMap", "ns", "a")  # same Lease as KEY
    with hold(m, [KEY, twin], "t", 10, clock=FakeClock()) as held:
        assert held.refs == (REF,)
    assert m.released == [REF]


def test_the_system_clock_drives_it_by_default() -> None:
    # The one test in real time: short intervals, so it stays quick.
    m = FakeHolder()
    began = time.monotonic()
    with hold(m, [KEY], "t", 1, renew_every=0.02) as held:
        while len(m.renewals) < 2 and time.monotonic() - began < 2:
            time.sleep(0.01)
        assert not held.lost.is_set()
    assert len(m.renewals) >= 2 and m.released == [REF]
