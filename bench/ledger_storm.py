"""A storm of refused writes: the ledger counts every one, stays small, and leaves admission alone.

``python -m bench.ledger_storm`` (the issue's run: 10,000 refused writes across
100 locked ConfigMaps from 8 clients; ``--writes 2000`` for a short one)
starts the local control plane, installs the chart's OpenReports CRDs, locks
the objects, and runs the same storm twice against the real webhook with the
chart's settings: ledger off, then on. Each client is a thread with its own
connection acting as bob (merge patches through the API server, every one
refused with 403). It prints, per run, the refusals the clients saw, the
admission latency the webhook measured (``leasegate_admission_duration_seconds``:
p99 as the histogram bucket it falls in, and the mean), the clients' p50/p99,
and with the ledger on: the counts in the ledger (lost = seen - counted), the
report's size and how long the ledger took to settle after the last write.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from bench.servers import chart_settings, start_leasegate
from bench.stats import summarize
from lockcore.ledger import GROUP, VERSION, ledger_entries
from lockcore.naming import ResourceKey
from tools.localcluster import LocalCluster, running
from tools.localwebhook import (
    RunningWebhook,
    as_body,
    grant_edit,
    guard,
    install_report_crds,
    lock,
    register_webhook,
    wait_for,
)

NAMESPACE = "storm"


def _client(cluster: LocalCluster, user: str) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), context=user)
    return api


def _prepare(cluster: LocalCluster, objects: int) -> list[str]:
    admin = _client(cluster, "admin")
    install_report_crds(admin)
    client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": NAMESPACE}}))
    grant_edit(admin, NAMESPACE)
    names = [f"cm{i:03d}" for i in range(objects)]
    for name in names:
        client.CoreV1Api(admin).create_namespaced_config_map(NAMESPACE, as_body({"metadata": {"name": name}}),
                                                             _preload_content=False)
        lock(admin, ResourceKey("", "ConfigMap", NAMESPACE, name), "t-storm")
    return names


def _storm(cluster: LocalCluster, names: list[str], writes: int, clients: int) -> dict[str, Any]:
    """``writes`` refused patches from ``clients`` threads; the 403s seen and the client latencies."""
    seen, errors = [0] * clients, [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def run(index: int) -> None:
        core = client.CoreV1Api(_client(cluster, "bob"))
        for i in range(index, writes, clients):
            started = time.perf_counter()
            try:
                core.patch_namespaced_config_map(names[i % len(names)], NAMESPACE, {"data": {"i": str(i)}},
                                                 _preload_content=False)
                errors[index] += 1  # allowed: the lock did not hold
            except ApiException as exc:
                if exc.status == 403:
                    seen[index] += 1
                else:
                    errors[index] += 1
            latencies[index].append(time.perf_counter() - started)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"refused_seen": sum(seen), "other_outcomes": sum(errors), "seconds": round(time.monotonic() - started, 1),
            "client": summarize([x for per in latencies for x in per])}


def _histogram(server: RunningWebhook) -> dict[float, float]:
    """Cumulative counts of the admission duration histogram by upper bound (seconds)."""
    out: dict[float, float] = {}
    for line in server.metrics().splitlines():
        match = re.match(r'leasegate_admission_duration_seconds_bucket\{.*le="([^"]+)".*\} (\S+)', line)
        if match:
            out[float(match[1])] = out.get(float(match[1]), 0.0) + float(match[2])
    return out


def _admission(before: dict[float, float], after: dict[float, float], server: RunningWebhook,
               sums: tuple[float, float]) -> dict[str, Any]:
    """The storm's admission latency from the histogram delta: p99's bucket, and the mean."""
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = delta[max(delta)]
    p99 = next(bound for bound, count in delta.items() if count >= 0.99 * total)
    mean_ms = (sums[1] - sums[0]) / total * 1000 if total else float("nan")
    return {"reviews": int(total), "p99_at_most_ms": p99 * 1000, "mean_ms": round(mean_ms, 3)}


def _ledger(cluster: LocalCluster, expected: int, timeout: float) -> dict[str, Any]:
    admin = _client(cluster, "admin")
    objects = client.CustomObjectsApi(admin)
    started = time.monotonic()

    def reports() -> list[dict[str, Any]]:
        resp: Any = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "reports",
                                                          _preload_content=False)
        return list(json.loads(resp.data)["items"])

    def counted() -> int:
        return sum(e.count for e in ledger_entries(reports()))

    try:
        wait_for(lambda: counted() >= expected, timeout=timeout, interval=0.5)
    except TimeoutError:
        pass
    items = reports()
    return {"counted": counted(), "lost": expected - counted(), "settled_after_s": round(time.monotonic() - started, 1),
            "results": sum(len(r.get("results") or []) for r in items),
            "largest_report_bytes": max((len(json.dumps(r)) for r in items), default=0)}


def _run(cluster: LocalCluster, workdir: Path, names: list[str], args: argparse.Namespace,
         ledger: bool) -> dict[str, Any]:
    settings = chart_settings()
    server = start_leasegate(workdir, cluster.kubeconfig, f"ledger-{'on' if ledger else 'off'}", settings,
                             ledger_enabled=str(ledger).lower())
    try:
        admin = _client(cluster, "admin")
        vwc = register_webhook(admin, server)
        guard(admin, NAMESPACE, server.key)
        before, sum_before = _histogram(server), server.metric("leasegate_admission_duration_seconds_sum")
        storm = _storm(cluster, names, args.writes, args.clients)
        storm["admission"] = _admission(before, _histogram(server), server,
                                        (sum_before, server.metric("leasegate_admission_duration_seconds_sum")))
        if ledger:
            storm["ledger"] = _ledger(cluster, storm["refused_seen"], timeout=60)
        client.AdmissionregistrationV1Api(admin).delete_validating_webhook_configuration(vwc)
        return storm
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_storm", description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=10000)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="leasegate-ledger-storm-"))
    with running(workdir / "cluster") as cluster:
        names = _prepare(cluster, args.objects)
        results = {"writes": args.writes, "objects": args.objects, "clients": args.clients,
                   "ledger_off": _run(cluster, workdir, names, args, ledger=False),
                   "ledger_on": _run(cluster, workdir, names, args, ledger=True)}
    print(json.dumps(results, indent=2))
    on, off = results["ledger_on"], results["ledger_off"]
    ok = on["ledger"]["lost"] == 0 and on["ledger"]["largest_report_bytes"] < 1024 * 1024
    print(f"ledger: {on['ledger']['counted']} counted of {on['refused_seen']} refused ({on['ledger']['lost']} lost), "
          f"largest report {on['ledger']['largest_report_bytes']} bytes; admission p99 <= "
          f"{on['admission']['p99_at_most_ms']} ms (ledger on) vs {off['admission']['p99_at_most_ms']} ms (off), "
          f"mean {on['admission']['mean_ms']} vs {off['admission']['mean_ms']} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
