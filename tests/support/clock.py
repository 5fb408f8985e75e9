"""A fake :class:`lockcore.clock.Clock` whose time moves only when a test moves it.

Like ``k8s.io/utils/clock/testing.FakeClock``: :meth:`FakeClock.advance`
steps time forward and wakes every thread whose :meth:`~FakeClock.wait` timed
out by then; :meth:`~FakeClock.sleep` advances time itself (the sleeper is the
one who moves it, so a single-threaded loop runs through its waits at once).
A thread in :meth:`~FakeClock.wait` also returns when its event is set.

Tests that drive background threads step in lock-step with them:
:meth:`~FakeClock.await_waiters` blocks (in real time, bounded) until that
many threads wait on the clock, so an ``advance`` never races a thread that
has not started waiting yet::

    clock = FakeClock()
    with hold(manager, [key], "t1", 30, renew_every=10, clock=clock) as held:
        clock.await_waiters(2)      # the renewer and the run-out watch
        clock.advance(10)           # the renewer wakes, renews, waits again
        clock.await_waiters(2)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
# How often a waiting thread looks at its event (real seconds): threading.Event
# cannot wake the clock's condition, so a set event is noticed within this.
_POLL_SECONDS = 0.002


@dataclass
class _Waiter:
    deadline: float
    fired: bool = False


class FakeClock:
    """Wall and monotonic time that advance together, by ``advance`` and ``sleep`` only; thread-safe."""

    def __init__(self, start: datetime = START, monotonic_start: float = 1000.0) -> None:
        self._start = start
        self._monotonic_start = monotonic_start
        self._elapsed = 0.0
        self._cond = threading.Condition()
        self._waiting: list[_Waiter] = []
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._cond:
            return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        with self._cond:
            return self._monotonic_start + self._elapsed

    def sleep(self, seconds: float) -> None:
        with self._cond:
            self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward; wake the waiters whose timeout has passed."""
        if seconds < 0:
            raise ValueError(f"time does not go back ({seconds})")
        with self._cond:
            self._elapsed += seconds
            for waiter in [w for w in self._waiting if w.deadline <= self._elapsed]:
                waiter.fired = True
                self._waiting.remove(waiter)
            self._cond.notify_all()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set (True) or fake time passes ``timeout`` (whether it is set then)."""
        with self._cond:
            waiter = _Waiter(self._elapsed + max(0.0, timeout))
            if waiter.deadline <= self._elapsed:
                return event.is_set()
            self._waiting.append(waiter)
            self._cond.notify_all()
            try:
                while not waiter.fired and not event.is_set():
                    self._cond.wait(_POLL_SECONDS)
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                self._cond.notify_all()
            return event.is_set()

    def waiters(self) -> int:
        """How many threads wait on this clock now."""
        with self._cond:
            return len(self._waiting)

    def await_waiters(self, count: int, timeout: float = 5.0) -> None:
        """Block (real time, at most ``timeout`` s) until ``count`` threads wait on this clock."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._waiting) == count, timeout):
                raise AssertionError(f"{len(self._waiting)} threads wait on the clock, not {count}")
