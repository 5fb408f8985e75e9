"""A holder that dies (SIGKILL, no release, no goodbye) blocks others until expiry, then not.

The holder is a separate process renewing its locks in a loop, as a real
transaction would; it is killed mid-flight. Another client then tries to take
every lock over and over: it must be refused until ``renewTime +
leaseDurationSeconds + clock_skew_seconds`` of the last renewal the API server
stored, and succeed promptly after.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from lockcore.errors import AlreadyLockedError
from lockcore.settings import LockSettings
from tests.support.contention import hold_and_wait, key_for, manager_for
from tests.support.figures import Figures
from tools.localcluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.stress]

LEASE_SECONDS = 4
KEYS = ("a", "b", "c")
# How soon after expiry + skew a poller retrying every POLL seconds must get in
# (poll period, plus API latency on a loaded 2-core machine).
POLL = 0.1
PROMPT = 2.0


def test_sigkilled_holder_blocks_until_expiry_then_the_lock_is_taken(
    cluster: LocalCluster, namespace: str, tmp_path: Path,
    figures: Figures,
) -> None:
    ready = tmp_path / "ready"
    holder = multiprocessing.get_context("spawn").Process(
        target=hold_and_wait,
        args=(str(cluster.kubeconfig), namespace, KEYS, "crashing-txn", LEASE_SECONDS, 1.0, str(ready)),
    )
    holder.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.is_alive(), "holder died before taking its locks"
            assert time.monotonic() < deadline, "holder never took its locks"
            time.sleep(0.05)
        time.sleep(1.5)  # let it renew at least once, so the kill lands mid-life
        os.kill(holder.pid or 0, signal.SIGKILL)
        killed_at = time.time()
    finally:
        holder.join(10)
    assert holder.exitcode == -signal.SIGKILL

    settings = LockSettings(lock_namespace=namespace)  # the default skew margin
    taker = manager_for(str(cluster.kubeconfig), settings, principal="admin")
    refs = [taker.ref_for(key_for(namespace, k)) for k in KEYS]
    time.sleep(0.3)  # a renewal already on the wire when the holder died still lands
    last = {ref: taker.get_lock(ref) for ref in refs}
    assert all(state is not None and state.holder == "crashing-txn" for state in last.values())

    refusals = 0
    taken_at: dict[str, float] = {}
    while len(taken_at) < len(refs) and time.time() < killed_at + LEASE_SECONDS + 15:
        for ref, key in zip(refs, KEYS):
            if ref.name in taken_at:
                continue
            try:
                taker.acquire(key_for(namespace, key), "rescuer", 30)
                taken_at[ref.name] = time.time()
            except AlreadyLockedError:
                refusals += 1
        time.sleep(POLL)

    lags = []
    for ref in refs:
        state = last[ref]
        assert state is not None
        expiry = state.expires_at()
        assert expiry is not None
        allowed_from = expiry.timestamp() + settings.clock_skew_seconds
        assert ref.name in taken_at, f"{ref} was never taken over"
        got = taken_at[ref.name]
        assert got > allowed_from, f"{ref} taken {allowed_from - got:.3f}s before expiry + skew"
        lags.append(got - allowed_from)
        assert got - allowed_from < PROMPT, f"{ref} taken only {got - allowed_from:.2f}s after expiry"
    figures(
        f"holder of {len(KEYS)} locks (lease {LEASE_SECONDS}s, skew {settings.clock_skew_seconds}s) "
        f"SIGKILLed; {refusals} takeover attempts refused before expiry+skew; all taken "
        f"{min(lags):.2f}-{max(lags):.2f}s after it (poll {POLL}s)"
    )
    assert refusals >= len(KEYS)  # it was really tried before expiry
    taker.api_client.close()
