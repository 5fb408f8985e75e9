"""A storm of refused writes: the ledger counts every one, stays small, and leaves admission alone.

``python -m bench.ledger_storm`` (the issue's run: 10,000 refused writes across
100 locked ConfigMaps from 8 clients; ``--writes 2000`` for a short one)
starts the local control plane, installs the chart's OpenReports CRDs, locks
the objects, and runs the same storm twice against the real webhook with the
chart's settings: ledger off, then on, ``--rounds`` times (alternating, so
neither condition always runs on the fuller etcd). Each client is a thread with its own
connection acting as bob (merge patches through the API server, every one
refused with 403). It prints, per run, the refusals the clients saw, the
admission latency the webhook measured (each refusal's ``latency_ms`` from its
log line: exact p50/p99), the clients' p50/p99,
and with the ledger on: the counts in the ledger (lost = seen - counted), the
report's size and how long the ledger took to settle after the last write.
"""

from __future__ import annotations

import argparse
import json
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


def _admission(server: RunningWebhook, offset: int) -> dict[str, Any]:
    """The webhook-side latency of every refusal logged after byte ``offset`` of its log (exact, not bucketed).

    Each refused write is one ``leasegate.audit`` line whose ``latency_ms`` the
    webhook measured from the review's arrival to its answer.
    """
    with open(server.log_file, "rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    latencies = [float(record["latency_ms"]) / 1000 for record in map(_json_or_none, lines)
                 if record and record.get("logger") == "leasegate.audit" and "latency_ms" in record]
    return {"reviews": len(latencies), **summarize(latencies)}


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


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
         ledger: bool, round_index: int) -> dict[str, Any]:
    settings = chart_settings()
    server = start_leasegate(workdir, cluster.kubeconfig, f"ledger-{'on' if ledger else 'off'}-{round_index}", settings,
                             ledger_enabled=str(ledger).lower())
    try:
        admin = _client(cluster, "admin")
        vwc = register_webhook(admin, server)
        guard(admin, NAMESPACE, server.key)
        offset = server.log_file.stat().st_size
        storm = _storm(cluster, names, args.writes, args.clients)
        storm["admission"] = _admission(server, offset)
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
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternating")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="leasegate-ledger-storm-"))
    runs: dict[str, list[dict[str, Any]]] = {"ledger_off": [], "ledger_on": []}
    with running(workdir / "cluster") as cluster:
        names = _prepare(cluster, args.objects)
        for round_index in range(args.rounds):
            for ledger in (False, True):
                runs[f"ledger_{'on' if ledger else 'off'}"].append(
                    _run(cluster, workdir, names, args, ledger, round_index))
    print(json.dumps({"writes": args.writes, "objects": args.objects, "clients": args.clients, **runs}, indent=2))
    ok = True
    for off, on in zip(runs["ledger_off"], runs["ledger_on"]):
        ok = ok and on["ledger"]["lost"] == 0 and on["ledger"]["largest_report_bytes"] < 1024 * 1024
        print(f"ledger: {on['ledger']['counted']} counted of {on['refused_seen']} refused ({on['ledger']['lost']} "
              f"lost), largest report {on['ledger']['largest_report_bytes']} bytes; admission p99 "
              f"{on['admission']['p99_ms']} ms (ledger on) vs {off['admission']['p99_ms']} ms (off), "
              f"p50 {on['admission']['p50_ms']} vs {off['admission']['p50_ms']} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
