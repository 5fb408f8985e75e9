"""End to end: latency of real writes through the official Python client, webhook registered or not.

The same objects (a 2 KB ConfigMap, a 20 KB Deployment, a 200 KB ConfigMap,
unlocked; and a 2 KB ConfigMap locked by the writer, whose writes carry the
holder's proof) are patched in turn, and a fresh 2 KB ConfigMap created, one
write at a time, by the official client against the local kube-apiserver, in
alternating blocks, twice over: no webhook registered, leasegate registered
as shipped (the fenced registration and the reservation policy: only marked
objects' updates reach the webhook; creates are judged in the API server), the allow-everything baseline (bench/baseline.py, same
stack) registered the old way (every write). The baseline's blocks say what
any webhook that is called for every write costs on this stack. Registration uses
:func:`tools.localwebhook.register_webhook` (which waits until the API server really calls
the webhook); after unregistering, writes go on until the webhook's decision
counter stops moving, so no block mixes the two conditions. Alternating blocks
spread the machine's background noise over both conditions.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from bench.apiserver import raw_call
from bench.reviews import configmap, deployment
from bench.stats import ratio, summarize
from lockcore.manager import LeaseManager
from lockcore.naming import ResourceKey
from lockcore.profiles import Profile
from tools.localwebhook import RunningWebhook, as_body, guard, register_webhook

NAMESPACE = "bench-e2e"
LOCKED = "e2e-locked"
TXN = "bench"
# Which kind of write each sample is: its row in the results.
_KINDS = ("unlocked", "locked", "create")


def _objects(api: client.ApiClient) -> list[tuple[str, str]]:
    """Create the write targets; returns (kind, name)."""
    specs = [("ConfigMap", configmap("e2e-cm2k", NAMESPACE, 2_000)),
             ("Deployment", deployment("e2e-deploy20k", NAMESPACE, 20_000)),
             ("ConfigMap", configmap("e2e-cm200k", NAMESPACE, 200_000)),
             ("ConfigMap", configmap(LOCKED, NAMESPACE, 2_000))]
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
    """One real write (a merge patch changing an annotation); returns its latency in seconds.

    The locked object's writes declare the holder's transaction, as the holder's would.
    """
    annotations = {"bench.leasegate.io/serial": str(serial)}
    if name == LOCKED:
        annotations["leasegate.io/transaction"] = TXN
    patch = {"metadata": {"annotations": annotations}}
    started = time.perf_counter()
    if kind == "Deployment":
        client.AppsV1Api(api).patch_namespaced_deployment(name, NAMESPACE, patch, _preload_content=False)
    else:
        client.CoreV1Api(api).patch_namespaced_config_map(name, NAMESPACE, patch, _preload_content=False)
    return time.perf_counter() - started


def _create(api: client.ApiClient, serial: int) -> float:
    """One real create of a fresh 2 KB ConfigMap (deleted afterwards, untimed); its latency."""
    body = configmap(f"e2e-new-{serial}", NAMESPACE, 2_000)
    core = client.CoreV1Api(api)
    started = time.perf_counter()
    core.create_namespaced_config_map(NAMESPACE, as_body(body), _preload_content=False)
    latency = time.perf_counter() - started
    core.delete_namespaced_config_map(str(body["metadata"]["name"]), NAMESPACE, _preload_content=False)
    return latency


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


def _block(api: client.ApiClient, targets: list[tuple[str, str]], writes: int, serial: int,
           samples: dict[str, list[float]], per_object: dict[str, list[float]], condition: str) -> int:
    """``writes`` writes cycling over the targets and a create; returns the next serial."""
    for _ in range(writes):
        slot = serial % (len(targets) + 1)
        if slot == len(targets):
            kind, latency = "create", _create(api, serial)
            name = "create"
        else:
            name = targets[slot][1]
            kind, latency = ("locked" if name == LOCKED else "unlocked"), _write(api, *targets[slot], serial)
        samples[f"{condition}:{kind}"].append(latency)
        per_object.setdefault(f"{condition}:{name}", []).append(latency)
        serial += 1
    return serial


def run(api: client.ApiClient, running: RunningWebhook, *, writes_per_block: int,
        baseline: RunningWebhook | None = None) -> dict[str, Any]:
    """Alternate blocks (off, leasegate, baseline) x 2; returns summaries and what each adds."""
    from bench.apiserver import ensure_namespace

    ensure_namespace(api, NAMESPACE)
    targets = _objects(api)
    # The locked object is locked (and marked) by the writer itself.
    LeaseManager(api).acquire(ResourceKey("", "ConfigMap", NAMESPACE, LOCKED), TXN, 3600)
    servers = {"on": running, **({"allow_all": baseline} if baseline is not None else {})}
    conditions = ["off", *servers]
    samples: dict[str, list[float]] = {f"{c}:{k}": [] for c in conditions for k in _KINDS}
    per_object: dict[str, list[float]] = {}
    serial = 0
    for _ in range(5):  # warm connections and the apiserver's caches
        _write(api, *targets[serial % len(targets)], serial)
        serial += 1
    for condition in conditions * 2:
        server = servers.get(condition)
        name = ""
        if server is not None:
            guard(api, NAMESPACE, server.key)
            # leasegate as shipped; the allow-all baseline the old way, called for every write.
            profile = Profile.JANUS if condition == "allow_all" else Profile.LEASEGATE
            name = register_webhook(api, server, profile=profile)
        serial = _block(api, targets, writes_per_block, serial, samples, per_object, condition)
        if server is not None:
            _unregister(api, name, server, targets)
    return _summary(samples, per_object)


def _summary(samples: dict[str, list[float]], per_object: dict[str, list[float]]) -> dict[str, Any]:
    summaries = {key: summarize(values) for key, values in samples.items() if values}
    out: dict[str, Any] = {"writes_per_row": {k: len(v) for k, v in samples.items()}, "rows": summaries,
                           "per_object": {k: summarize(v) for k, v in sorted(per_object.items())}}
    for kind in _KINDS:
        off = summaries[f"off:{kind}"]
        for condition in ("on", "allow_all"):
            row = summaries.get(f"{condition}:{kind}")
            if row is not None:
                out[f"{condition}_{kind}_added_p50_ms"] = round(row["p50_ms"] - off["p50_ms"], 3)
                out[f"{condition}_{kind}_added_p99_ms"] = round(row["p99_ms"] - off["p99_ms"], 3)
                out[f"{condition}_{kind}_p50_ratio"] = ratio(row["p50_ms"], off["p50_ms"])
    return out
