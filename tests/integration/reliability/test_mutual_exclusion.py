"""Mutual exclusion under contention, against the real kube-apiserver.

Several processes, each with its own LeaseManager and connections, fight over
a few keys for a fixed time: acquire, hold, sometimes renew, then release or
walk away (so others must take an expired lease over). Two independent
checks must both find nothing:

* the clients' own logs of when they trusted a lock: no two holders' intervals
  on one key intersect (tests.support.intervals);
* the API server's record, read through a watch on the Leases: every takeover
  happened only after the previous holder's lease plus the skew margin ran
  out, and every holder the server saw is an acquisition some client logged.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest

from tests.support.cluster import ApiClientFactory
from tests.support.contention import ContenderLog, ContenderSpec, contend
from tests.support.figures import Figures
from tests.support.intervals import overlaps
from tests.support.leasewatch import LeaseWatcher
from tests.support.reliability import stress_seconds
from tools.localcluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.stress]

PROCESSES = 6
KEYS = ("k0", "k1", "k2")
LEASE_SECONDS = 2
SKEW_SECONDS = 0.5


def test_no_two_holders_of_one_key_under_contention(
    cluster: LocalCluster, namespace: str, api_client: ApiClientFactory, figures: Figures
) -> None:
    seconds = stress_seconds(20)
    watcher = LeaseWatcher(api_client("admin"), namespace, SKEW_SECONDS)
    watcher.start()
    start_at = time.time() + 5  # time for the spawned interpreters to import everything
    specs = [
        ContenderSpec(index=i, kubeconfig=str(cluster.kubeconfig), namespace=namespace, keys=KEYS,
                      seconds=seconds, lease_seconds=LEASE_SECONDS, skew_seconds=SKEW_SECONDS,
                      start_at=start_at, seed=int(start_at))
        for i in range(PROCESSES)
    ]
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        logs: list[ContenderLog] = pool.map(contend, specs, chunksize=1)
    seen = watcher.finish()

    holds = [hold for log in logs for hold in log.holds]
    acquired = sum(log.acquired for log in logs)
    contended = sum(log.contended for log in logs)
    renewed = sum(log.renewed for log in logs)
    abandoned = sum(log.abandoned for log in logs)
    op_errors = [e for log in logs for e in log.op_errors]
    stolen = [s for log in logs for s in log.stolen]
    figures(
        f"{PROCESSES} processes x {seconds:.0f}s on {len(KEYS)} keys: {acquired} acquisitions "
        f"({sum(log.attempts for log in logs)} attempts, {contended} refused as held), "
        f"{renewed} renewals, {sum(log.released for log in logs)} releases, {abandoned} abandoned "
        f"-> {seen.takeovers} takeovers after expiry (closest {(seen.min_takeover_margin or 0) * 1000:.2f} ms "
        f"past expiry+skew), {sum(log.self_expired for log in logs)} holds cut at their own expiry, "
        f"{len(op_errors)} API errors, {seen.events} lease events watched; overlaps: "
        f"{len(overlaps(holds))}"
    )

    assert not overlaps(holds), "\n".join(str(o) for o in overlaps(holds)[:10])
    assert not stolen, stolen[:5]
    assert not seen.early_takeovers, seen.early_takeovers[:5]
    logged = {txn for log in logs for txn in log.txns}
    assert seen.holders == logged, (
        f"server saw holders nobody logged: {sorted(seen.holders - logged)[:5]}; "
        f"logged acquisitions the server never saw: {sorted(logged - seen.holders)[:5]}")
    # The run must have been a real fight, or it proves nothing.
    assert acquired >= 50 and contended >= 50 and renewed >= 10
    assert abandoned >= 1 and seen.takeovers >= 1
    assert len(op_errors) <= acquired // 20, op_errors[:5]
