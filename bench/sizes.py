"""Latency by review size, one request at a time: where a large review's time goes.

``python -m bench.sizes`` (about a minute) starts the local control plane,
creates the benchmark's three unlocked objects, and sends each one's UPDATE
review over one kept-alive TLS connection, sequentially, to:

* leasegate with the chart's settings;
* leasegate with ``retain_freed_memory_mib=0`` (glibc's own malloc thresholds);
* the allow-everything baseline (same stack, same settings).

It prints p50/p90 per size and server, the worker's minor page faults per
review, and ``json.loads`` of each body alone. Servers take turns (two rounds)
so the machine's background noise falls on all of them.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import tempfile
import time
from pathlib import Path

from bench.apiserver import admin_client
from bench.reviews import create_objects, review
from bench.servers import chart_settings, start_baseline, start_leasegate
from bench.stats import percentile
from lockcore.settings import LockSettings
from tools.localcluster import running
from tools.localwebhook import RunningWebhook, minor_page_faults

REQUESTS, WARMUP = 300, 50


def _measure(server: RunningWebhook, body: bytes) -> dict[str, float]:
    (worker,) = server.wait_workers(1)
    conn = http.client.HTTPSConnection("127.0.0.1", server.port,
                                       context=ssl.create_default_context(cafile=str(server.ca_file)))
    latencies: list[float] = []
    faults = 0
    try:
        for i in range(WARMUP + REQUESTS):
            if i == WARMUP:
                faults = minor_page_faults(worker)
            started = time.perf_counter()
            conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            if answer.status != 200 or not json.loads(answer.read())["response"]["allowed"]:
                raise RuntimeError(f"{server.key}: unexpected answer to an unlocked write")
            if i >= WARMUP:
                latencies.append(time.perf_counter() - started)
    finally:
        conn.close()
    return {"p50_ms": percentile(latencies, 50) * 1000, "p90_ms": percentile(latencies, 90) * 1000,
            "faults_per_review": (minor_page_faults(worker) - faults) / REQUESTS}


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sizes-"))
    settings = {**chart_settings(), "workers": "1"}
    lock_settings = LockSettings()
    with running(workdir / "cluster") as cluster:
        kubeconfig = cluster.kubeconfig_for("admin")
        api = admin_client(kubeconfig)
        bodies = {obj.size: json.dumps(review(obj, lock_settings, 1)).encode()
                  for obj in create_objects(api, lock_settings) if obj.state == "unlocked"}
        servers = {
            "leasegate": start_leasegate(workdir, kubeconfig, "sizes-lg", settings),
            "leasegate, retain 0": start_leasegate(workdir, kubeconfig, "sizes-lg0", settings,
                                                   retain_freed_memory_mib="0"),
            "allow-all": start_baseline(workdir, "sizes-base", settings),
        }
        try:
            rows: dict[tuple[str, str], list[dict[str, float]]] = {}
            for _ in range(2):
                for name, server in servers.items():
                    for size, body in bodies.items():
                        rows.setdefault((name, size), []).append(_measure(server, body))
        finally:
            for server in servers.values():
                server.stop()
    print("| server | object | review bytes | p50 ms (rounds) | p90 ms | minor faults/review |")
    print("|---|---|---|---|---|---|")
    for (name, size), runs in rows.items():
        p50s = " / ".join(f"{r['p50_ms']:.2f}" for r in runs)
        p90s = " / ".join(f"{r['p90_ms']:.2f}" for r in runs)
        faults = " / ".join(f"{r['faults_per_review']:.0f}" for r in runs)
        print(f"| {name} | {size} | {len(bodies[size]):,} | {p50s} | {p90s} | {faults} |")
    for size, body in bodies.items():
        started = time.perf_counter()
        for _ in range(200):
            json.loads(body)
        print(f"json.loads alone, {size} ({len(body):,} B): {(time.perf_counter() - started) / 200 * 1000:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
