"""Clock skew: within LockSettings.clock_skew_seconds nobody steals a live lease; beyond it, they can.

One client's clock is shifted (LeaseManager takes a ``clock``). Either the
taker's clock runs *ahead* (it sees the lease expire early) or the holder's
runs *behind* (it writes a renewTime in the past, so the lease expires early
in real time). The holder, with its own clock, trusts its lock until its
``renewTime + leaseDurationSeconds``. A taker polls throughout the holder's
lease: within the margin every attempt is refused; beyond it the taker gets
in while the holder still trusts its lock, which shows it is the margin, not
luck, that protects.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from lockcore.clock import SYSTEM_CLOCK, Clock, SystemClock
from lockcore.errors import AlreadyLockedError
from lockcore.settings import LockSettings
from tests.support.contention import key_for, manager_for
from tests.support.figures import Figures
from tools.localcluster import LocalCluster

pytestmark = pytest.mark.integration

SKEW_MARGIN = 1.0
LEASE_SECONDS = 3


class Shifted(SystemClock):
    """The system clock with its wall time moved by ``offset`` seconds (monotonic time unchanged)."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return super().now() + self.offset


def shifted(offset: float) -> Clock:
    return Shifted(offset)


@pytest.mark.parametrize(("who", "offset", "steals"), [
    ("taker-ahead", 0.0, False),
    ("taker-ahead", SKEW_MARGIN - 0.4, False),
    ("holder-behind", SKEW_MARGIN - 0.4, False),
    ("taker-ahead", SKEW_MARGIN + 1.2, True),
    ("holder-behind", SKEW_MARGIN + 1.2, True),
])
def test_skewed_clock_steals_only_beyond_the_margin(
    cluster: LocalCluster, namespace: str, who: str, offset: float, steals: bool, figures: Figures
) -> None:
    settings = LockSettings(lock_namespace=namespace, clock_skew_seconds=SKEW_MARGIN)
    holder_clock = shifted(-offset) if who == "holder-behind" else SYSTEM_CLOCK
    taker_clock = shifted(offset) if who == "taker-ahead" else SYSTEM_CLOCK
    holder = manager_for(str(cluster.kubeconfig), settings, principal="admin", clock=holder_clock)
    taker = manager_for(str(cluster.kubeconfig), settings, principal="admin", clock=taker_clock)
    key = key_for(namespace, "skewed")

    started = time.time()
    holder.acquire(key, "holder", LEASE_SECONDS)
    # The holder's clock reads (real - offset) when behind: it trusts the lock until
    # its own clock passes renewTime + duration, i.e. real time started + duration.
    trusted_until = started + LEASE_SECONDS
    stolen_at: float | None = None
    refusals = 0
    while time.time() < trusted_until - 0.1:
        try:
            taker.acquire(key, "taker", 30)
            stolen_at = time.time()
            break
        except AlreadyLockedError:
            refusals += 1
        time.sleep(0.05)
    if steals:
        assert stolen_at is not None, f"{who} by {offset}s (> margin {SKEW_MARGIN}s) never got in"
        assert stolen_at < trusted_until
        figures(f"{who} by {offset:.1f}s > margin {SKEW_MARGIN}s: lease stolen "
                f"{trusted_until - stolen_at:.2f}s before the holder's own expiry")
    else:
        assert stolen_at is None, (
            f"{who} by {offset}s (within margin {SKEW_MARGIN}s) took a live lease "
            f"{trusted_until - stolen_at:.2f}s before the holder's expiry")
        assert refusals >= 10
        figures(f"{who} by {offset:.1f}s <= margin {SKEW_MARGIN}s: {refusals} attempts during "
                f"the {LEASE_SECONDS}s lease, all refused")
    holder.api_client.close()
    taker.api_client.close()
