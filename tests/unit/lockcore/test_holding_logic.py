"""hold()'s renewal policy, against an in-memory Manager (our own interface, not the Kubernetes API)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import timedelta

import pytest

from lockcore.errors import AlreadyLockedError, LeaseOpError, LockError
from lockcore.holding import LockLostError, acquire_all, hold
from lockcore.manager import MemberSpecs
from lockcore.naming import LeaseRef, ResourceKey


class FlakyManager:
    """Renew fails with a transient API error the first ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.renewals = 0
        self.released: list[LeaseRef] = []
        self.renewed = threading.Event()

    def ref_for(self, key: ResourceKey) -> LeaseRef:
        return LeaseRef(key.namespace, key.name)

    def acquire(self, key: ResourceKey, txn: str, timeout: float | timedelta, *, fence: bool = True,
                wait: float | None = None, members: MemberSpecs | None = None) -> LeaseRef:
        return self.ref_for(key)

    def renew(self, lease: LeaseRef, txn: str, timeout: float | timedelta) -> None:
        self.renewals += 1
        if self.renewals <= self.failures:
            raise LeaseOpError("renewing", lease.name, ConnectionError("apiserver down"))
        self.renewed.set()

    def release(self, lease: LeaseRef, txn: str) -> None:
        self.released.append(lease)

    def release_all(self, leases: Iterable[LeaseRef], txn: str) -> None:
        for lease in leases:
            self.release(lease, txn)


KEY = ResourceKey("", "ConfigMap", "ns", "a")


def test_transient_errors_within_the_lease_are_survived() -> None:
    m = FlakyManager(failures=2)
    with hold(m, [KEY], "t", 1, renew_every=0.05) as held:
        assert m.renewed.wait(2)
        assert not held.lost.is_set()
    assert m.released == [LeaseRef("ns", "a")]


def test_errors_until_the_lease_runs_out_mean_loss() -> None:
    m = FlakyManager(failures=10**6)
    lost: list[LockLostError] = []
    held = hold(m, [KEY], "t", 1, renew_every=0.1, on_lost=lost.append, raise_on_loss=False)
    with held:
        assert held.lost.wait(3)
    assert isinstance(lost[0].cause, LeaseOpError)
    assert m.released == [LeaseRef("ns", "a")], "released on exit even after a loss"


def test_partial_acquire_is_rolled_back() -> None:
    class Refusing(FlakyManager):
        def acquire(self, key: ResourceKey, txn: str, timeout: float | timedelta, *, fence: bool = True,
                    wait: float | None = None, members: MemberSpecs | None = None) -> LeaseRef:
            if key.name == "b":
                raise AlreadyLockedError("b", "other")
            return self.ref_for(key)

    m = Refusing(failures=0)
    try:
        with hold(m, [ResourceKey("", "ConfigMap", "ns", n) for n in "cba"], "t", 5):
            raise AssertionError("must not enter")
    except LockError as exc:
        assert isinstance(exc, AlreadyLockedError)
    assert m.released == [LeaseRef("ns", "a")]


def test_loss_is_reported_when_the_lease_runs_out_not_a_tick_later() -> None:
    # Renewals every 1.9 s of a 2 s lease, all failing: the loss must surface
    # when the lease runs out (~2 s), not at the next renewal tick (~3.8 s).
    m = FlakyManager(failures=10**6)
    held = hold(m, [KEY], "t", 2, renew_every=1.9, raise_on_loss=False)
    with held:
        assert not held.lost.wait(1.5), "reported lost while the lease was still running"
        assert held.lost.wait(1.4), "loss not reported when the lease ran out"


def test_check_reports_loss_while_the_renewer_hangs() -> None:
    # A renewal stuck in an unresponsive API server must not keep the lock
    # trusted past its lease: check() judges expiry itself.
    class Hanging(FlakyManager):
        def __init__(self) -> None:
            super().__init__(failures=0)
            self.unblock = threading.Event()
            self.entered = threading.Event()

        def renew(self, lease: LeaseRef, txn: str, timeout: float | timedelta) -> None:
            self.entered.set()
            self.unblock.wait(10)

    m = Hanging()
    held = hold(m, [KEY], "t", 1, renew_every=0.2, raise_on_loss=False)
    with held:
        assert m.entered.wait(2)
        held.check()  # still within the lease
        try:
            assert held.lost.wait(2), "loss not noticed while the renewer hung"
            try:
                held.check()
            except LockLostError as exc:
                assert exc.lease == LeaseRef("ns", "a")
            else:
                raise AssertionError("check() trusted a lease that ran out")
        finally:
            m.unblock.set()


@pytest.mark.parametrize("take", [hold, acquire_all])
def test_no_keys_is_refused_before_any_call(take: Callable[..., object]) -> None:
    m = FlakyManager(failures=0)
    with pytest.raises(ValueError, match="at least one resource key"):
        take(m, [], "t", 10)
    assert m.renewals == 0 and m.released == []


def test_keys_naming_one_lease_are_one_lock() -> None:
    m = FlakyManager(failures=0)
    twin = ResourceKey("", "ConfigMap", "ns", "a")  # same Lease as KEY
    with hold(m, [KEY, twin], "t", 10) as held:
        assert held.refs == (LeaseRef("ns", "a"),)
    assert m.released == [LeaseRef("ns", "a")]
