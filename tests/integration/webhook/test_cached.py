"""Cached lease lookups: a watch-fed cache enforces locks within its staleness bound,
and is measured against consistent lookups (the figures behind the default)."""

from __future__ import annotations

import http.client
import json
import ssl
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.naming import ResourceKey
from tests.support.cluster import ApiClientFactory
from tests.support.webhooks import WebhookFactory
from tools.localwebhook import RunningWebhook, grant_edit, guard, lock, unlock, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cached_webhook(shipped_webhook: RunningWebhook) -> RunningWebhook:
    """Cached lookups with the default 5 s staleness bound: the webhook as shipped."""
    return shipped_webhook


def _denied(api: client.ApiClient, namespace: str) -> bool:
    try:
        client.CoreV1Api(api).patch_namespaced_config_map("cfg", namespace, {"data": {"t": str(time.time())}},
                                                         _preload_content=False)
    except ApiException as exc:
        return exc.status == 403
    return False


def test_cache_enforces_new_locks_and_releases_within_the_bound(
        cached_webhook: RunningWebhook, api_client: ApiClientFactory, namespace: str) -> None:
    admin, bob = api_client("admin"), api_client("bob")
    grant_edit(admin, namespace)
    guard(admin, namespace, cached_webhook.key)
    client.CoreV1Api(admin).create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}},
                                                         _preload_content=False)
    key = ResourceKey("", "ConfigMap", namespace, "cfg")
    lock(admin, key, "t1")
    started = time.monotonic()
    wait_for(lambda: _denied(bob, namespace), timeout=5, interval=0.05)
    enforced_after = time.monotonic() - started
    unlock(admin, key)
    wait_for(lambda: not _denied(bob, namespace), timeout=5, interval=0.05)
    assert enforced_after < 5
    staleness = cached_webhook.metric("leasegate_lease_cache_staleness_seconds")
    assert 0 <= staleness <= 5


def _review(namespace: str, i: int) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": f"u{i}", "operation": "UPDATE",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "namespace": namespace, "name": f"cm-{i % 50}", "userInfo": {"username": "bob"},
        "object": {"metadata": {"name": f"cm-{i % 50}"}, "data": {"k": "v" * 1500}},
        "oldObject": {"metadata": {"name": f"cm-{i % 50}"}, "data": {"k": "w" * 1500}},
    }}).encode()


def _measure(running: RunningWebhook, namespace: str, requests_per_thread: int, threads: int) -> dict[str, float]:
    context = ssl.create_default_context(cafile=str(running.ca_file))

    def worker(offset: int) -> list[float]:
        conn = http.client.HTTPSConnection("127.0.0.1", running.port, context=context, timeout=10)
        latencies = []
        for i in range(requests_per_thread):
            body = _review(namespace, offset + i)
            t0 = time.perf_counter()
            conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            latencies.append(time.perf_counter() - t0)
            assert resp.status == 200
        conn.close()
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(worker, [t * requests_per_thread for t in range(threads)]))
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r)
    return {"rps": len(latencies) / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def test_measure_cached_against_consistent(
        cached_webhook: RunningWebhook, webhook_factory: WebhookFactory, namespace: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    consistent = webhook_factory("measure-consistent", lease_lookup="consistent")
    cached_webhook.post(_review(namespace, 0))  # start the watch
    wait_for(lambda: cached_webhook.metric("leasegate_lease_cache_staleness_seconds") < 5, timeout=10)
    figures = {}
    for name, running in (("consistent", consistent), ("cached", cached_webhook)):
        _measure(running, namespace, 20, 2)  # warm up connections and workers
        figures[name] = _measure(running, namespace, 150, 4)
    with capsys.disabled():
        for name, fig in figures.items():
            print(f"\n{name:>10}: {fig['rps']:7.0f} reviews/s  p50 {fig['p50_ms']:.2f} ms  p99 {fig['p99_ms']:.2f} ms",
                  end="")
        print()
    # Cached lookups skip an API round trip per review: never slower in the median.
    assert figures["cached"]["p50_ms"] <= figures["consistent"]["p50_ms"] * 1.1
