"""The injected clock (lockcore.clock) and the fake one tests drive it with (tests/support/clock.py)."""

from __future__ import annotations

import threading
from datetime import timedelta, timezone

import pytest

from lockcore.clock import SYSTEM_CLOCK, Clock, SystemClock
from tests.support.clock import START, FakeClock


@pytest.mark.parametrize("clock", [SYSTEM_CLOCK, FakeClock()], ids=["system", "fake"])
def test_wall_time_is_aware_utc_and_a_set_event_ends_a_wait(clock: Clock) -> None:
    assert clock.now().tzinfo is not None and clock.now().utcoffset() == timedelta(0)
    before = clock.monotonic()
    event = threading.Event()
    assert clock.wait(event, 0) is False
    event.set()
    assert clock.wait(event, 60) is True
    assert clock.monotonic() >= before


def test_the_system_clock_waits_and_sleeps_in_real_time() -> None:
    clock = SystemClock()
    before = clock.monotonic()
    clock.sleep(0.01)
    assert clock.wait(threading.Event(), 0.01) is False
    assert clock.monotonic() - before >= 0.02


def test_fake_time_moves_only_when_advanced_or_slept() -> None:
    clock = FakeClock()
    assert clock.now() == START and clock.now().tzinfo is timezone.utc
    clock.advance(1.5)
    clock.sleep(2)
    assert clock.now() == START + timedelta(seconds=3.5) and clock.monotonic() == 1003.5
    assert clock.slept == [2]
    with pytest.raises(ValueError):
        clock.advance(-1)


def waiting(clock: FakeClock, event: threading.Event, timeout: float) -> tuple[threading.Thread, list[bool]]:
    """A thread in ``clock.wait(event, timeout)`` (started, and waiting by the time this returns), and its outcome."""
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(clock.wait(event, timeout)))
    waiter.start()
    clock.await_waiters(1)
    return waiter, outcome


def test_a_fake_wait_ends_when_time_passes_its_deadline() -> None:
    clock, event = FakeClock(), threading.Event()
    waiter, outcome = waiting(clock, event, 10)
    clock.advance(9.5)
    assert clock.waiters() == 1 and outcome == []
    clock.advance(0.5)
    waiter.join(2)
    assert outcome == [False] and clock.waiters() == 0


def test_a_fake_wait_ends_when_its_event_is_set() -> None:
    clock, event = FakeClock(), threading.Event()
    waiter, outcome = waiting(clock, event, 10)
    event.set()
    waiter.join(2)
    assert outcome == [True] and clock.waiters() == 0 and clock.monotonic() == 1000.0


def test_await_waiters_says_when_nobody_comes() -> None:
    with pytest.raises(AssertionError, match="0 threads wait on the clock, not 1"):
        FakeClock().await_waiters(1, timeout=0.01)
