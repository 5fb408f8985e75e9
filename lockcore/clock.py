"""The one clock lockcore reads time from, injected so tests can run on fake time.

Like client-go's ``k8s.io/utils/clock``: what waits or judges time takes a
:class:`Clock` (the lock manager's acquire wait loop and expiry checks, the
fence's probe loop, :class:`~lockcore.holding.HeldLocks`' renewer and
run-out watch; in the webhook, the judge's "now", the Lease cache's
staleness, the namespace-mode cache, the Event recorder and the ledger), and
:data:`SYSTEM_CLOCK` is the default. A test passes a
fake one whose time moves only when the test says so.

Wall time (``now``) is for what the API server stores and compares
(``renewTime``, expiry); monotonic seconds are for local deadlines, which a
wall-clock step must not move.

Example::

    >>> clock = SYSTEM_CLOCK
    >>> clock.now().tzinfo is not None
    True
    >>> clock.wait(threading.Event(), 0.0)
    False
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "utcnow"]


def utcnow() -> datetime:
    """The wall time now, as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class Clock(Protocol):
    """Time as lockcore reads it; implementations are safe to share between threads."""

    def now(self) -> datetime:
        """Wall time, an aware UTC datetime."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go back."""

    def sleep(self, seconds: float) -> None:
        """Return after ``seconds``."""

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds pass; whether it is set."""


class SystemClock:
    """The machine's clocks: ``datetime.now``, ``time.monotonic``, ``time.sleep``, ``Event.wait``."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)


SYSTEM_CLOCK: Clock = SystemClock()
