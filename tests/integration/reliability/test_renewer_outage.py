"""The background renewer (lockcore.holding) across a real API server outage.

On a dedicated control plane the kube-apiserver process is stopped and
started again (etcd keeps the Leases). An outage shorter than the lease
costs nothing: renewals resume, the lock never changes hands, no loss is
signalled. An outage longer than the lease is reported as a loss, and the
report comes before anyone else may take the lock over (renewTime + lease +
clock_skew_seconds).
"""

from __future__ import annotations

import time

import pytest
from kubernetes import config

from lockcore.holding import hold
from lockcore.manager import LeaseManager
from lockcore.settings import LockSettings
from tests.support.contention import key_for
from tests.support.figures import Figures
from tools.localcluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.stress]


def make_manager(cluster: LocalCluster, namespace: str) -> LeaseManager:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.configuration.retries = False
    return LeaseManager(api, LockSettings(lock_namespace=namespace), principal="admin")


def test_outage_shorter_than_the_lease_keeps_the_lock(fragile_cluster: LocalCluster, fragile_namespace: str,
                                                      figures: Figures) -> None:
    manager = make_manager(fragile_cluster, fragile_namespace)
    key = key_for(fragile_namespace, "short")
    with hold(manager, [key], "survivor", ttl=30, renew_every=1) as held:
        ref = held.refs[0]
        before = manager.get_lock(ref)
        fragile_cluster.stop_apiserver()
        down_at = time.monotonic()
        time.sleep(4)
        fragile_cluster.start_apiserver()
        outage = time.monotonic() - down_at
        time.sleep(2.5)  # at least two renewal ticks after the API server is back
        after = manager.get_lock(ref)
        assert not held.lost.is_set(), held.loss
        held.check()
    assert before is not None and after is not None
    assert after.holder == "survivor" and after.acquire_time == before.acquire_time
    assert after.renew_time is not None and before.renew_time is not None
    assert after.renew_time > before.renew_time, "renewals resumed after the outage"
    assert manager.get_lock(ref) is None, "released on exit"
    figures(f"API server down {outage:.1f}s (lease 30s): lock kept, same acquireTime, renewals resumed")


def test_outage_longer_than_the_lease_is_reported_before_takeover_is_allowed(
    fragile_cluster: LocalCluster, fragile_namespace: str, figures: Figures
) -> None:
    manager = make_manager(fragile_cluster, fragile_namespace)
    skew = manager.settings.clock_skew_seconds
    key = key_for(fragile_namespace, "long")
    ttl = 4
    held = hold(manager, [key], "doomed", ttl=ttl, renew_every=1, raise_on_loss=False).__enter__()
    try:
        time.sleep(1.5)
        state = manager.get_lock(held.refs[0])
        assert state is not None and state.expires_at() is not None
        fragile_cluster.stop_apiserver()
        last_expiry = state.expires_at()
        assert last_expiry is not None
        # The renewal in flight when the API server stopped may have landed; be generous to it.
        takeover_allowed_at = last_expiry.timestamp() + 1.0 + skew
        assert held.lost.wait(ttl + 10), "loss never reported"
        reported_at = time.time()
    finally:
        fragile_cluster.start_apiserver()
        held.__exit__(None, None, None)
    figures(f"API server down > lease ({ttl}s): loss reported {takeover_allowed_at - reported_at:.1f}s "
            f"before anyone may take the lock over")
    assert reported_at < takeover_allowed_at
