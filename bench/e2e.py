"""End to end: latency of real writes through the official Python client, webhook registered or not.

The same objects (a 2 KB ConfigMap, a 20 KB Deployment, a 200 KB ConfigMap,
unlocked) are patched in turn, one write at a time, by the official client
against the local kube-apiserver, in alternating blocks, twice over: no
webhook registered, leasegate registered, the allow-everything baseline
(bench/baseline.py, same stack) registered. The baseline's blocks say how much
of what leasegate adds any webhook on this stack adds. Registration uses
:func:`tools.localwebhook.register_webhook` (which waits until the API server really calls
the webhook); after unregistering, writes go on until the webhook's decision
counter stops moving, so no block mixes the two conditions. Alternating blocks
spread the machine's background noise over both conditions.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from bench.kube import raw_call
from bench.reviews import configmap, deployment
from bench.stats import ratio, summarize
from tools.localwebhook import RunningWebhook, guard, register_webhook

NAMESPACE = "bench-e2e"


def _objects(api: client.ApiClient) -> list[tuple[str, str]]:
    """Create the write targets; returns (kind, name)."""
    specs = [("ConfigMap", configmap("e2e-cm2k", NAMESPACE, 2_000)),
             ("Deployment", deployment("e2e-deploy20k", NAMESPACE, 20_000)),
             ("ConfigMap", configmap("e2e-cm200k", NAMESPACE, 200_000))]
    out = []
    for kind, body in specs:
        path = (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments" if kind == "Deployment"
                else f"/api/v1/namespaces/{NAMESPACE}/configmaps")
        status, reply = raw_call(api, "POST", path, body)
        if status not in (201, 409):
            raise RuntimeError(f"creating {kind} {body['metadata']['name']}: HTTP {status}: {reply}")
        out.append((kind, str(body["metadata"]["name"])))
    return out


def _write(api: client.ApiClient, kind: str, name: str, serial: int) -> float:
    """One real write (a merge patch changing an annotation); returns its latency in seconds."""
    patch = {"metadata": {"annotations": {"bench.leasegate.io/serial": str(serial)}}}
    started = time.perf_counter()
    if kind == "Deployment":
        client.AppsV1Api(api).patch_namespaced_deployment(name, NAMESPACE, patch, _preload_content=False)
    else:
        client.CoreV1Api(api).patch_namespaced_config_map(name, NAMESPACE, patch, _preload_content=False)
    return time.perf_counter() - started


def _unregister(api: client.ApiClient, name: str, running: RunningWebhook,
                targets: list[tuple[str, str]]) -> None:
    client.AdmissionregistrationV1Api(api).delete_validating_webhook_configuration(name)
    quiet, serial = 0, 10_000_000
    deadline = time.monotonic() + 30
    while quiet < 5 and time.monotonic() < deadline:
        before = running.metric("leasegate_admission_decisions_total")
        kind, obj = targets[serial % len(targets)]
        _write(api, kind, obj, serial)
        serial += 1
        quiet = quiet + 1 if running.metric("leasegate_admission_decisions_total") == before else 0


def run(api: client.ApiClient, running: RunningWebhook, *, writes_per_block: int,
        baseline: RunningWebhook | None = None) -> dict[str, Any]:
    """Alternate blocks (off, leasegate, baseline) x 2; returns summaries and what each adds."""
    from bench.kube import ensure_namespace

    ensure_namespace(api, NAMESPACE)
    targets = _objects(api)
    servers = {"on": running, **({"allow_all": baseline} if baseline is not None else {})}
    samples: dict[str, list[float]] = {"off": [], **{name: [] for name in servers}}
    per_kind: dict[str, list[float]] = {}
    serial = 0
    for _ in range(5):  # warm connections and the apiserver's caches
        _write(api, *targets[serial % len(targets)], serial)
        serial += 1
    for condition in [*samples] * 2:
        server = servers.get(condition)
        name = ""
        if server is not None:
            guard(api, NAMESPACE, server.key)
            name = register_webhook(api, server)
        for _ in range(writes_per_block):
            kind, obj = targets[serial % len(targets)]
            latency = _write(api, kind, obj, serial)
            samples[condition].append(latency)
            per_kind.setdefault(f"{condition}:{obj}", []).append(latency)
            serial += 1
        if server is not None:
            _unregister(api, name, server, targets)
    summaries = {condition: summarize(values) for condition, values in samples.items()}
    off, on = summaries["off"], summaries["on"]
    out: dict[str, Any] = {
        "writes_per_condition": len(samples["on"]),
        **summaries,
        "added_p50_ms": round(on["p50_ms"] - off["p50_ms"], 3),
        "added_p99_ms": round(on["p99_ms"] - off["p99_ms"], 3),
        "p50_ratio": ratio(on["p50_ms"], off["p50_ms"]),
        "per_object": {k: summarize(v) for k, v in sorted(per_kind.items())},
    }
    if "allow_all" in summaries:
        out["allow_all_added_p50_ms"] = round(summaries["allow_all"]["p50_ms"] - off["p50_ms"], 3)
        out["allow_all_added_p99_ms"] = round(summaries["allow_all"]["p99_ms"] - off["p99_ms"], 3)
    return out
