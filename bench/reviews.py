"""Realistic AdmissionReview bodies, generated from real objects stored in the apiserver.

Three object shapes (:data:`SIZES`): a ~2 KB ConfigMap, a ~20 KB Deployment
and a ~200 KB ConfigMap. Each is created in the local kube-apiserver, read
back (so it carries the server's metadata: uid, resourceVersion,
managedFields...), and turned into the UPDATE review the apiserver would send:
``oldObject`` is the stored object, ``object`` the same with a changed field.

Lock states (:data:`STATES`), with their Leases created as lockcore writes them:

* ``unlocked``: no Lease (most requests);
* ``same``: a live Lease held by :data:`HOLDER`, and the write sets the
  transaction annotation to it (allowed: in transaction);
* ``other``: a live Lease held by :data:`HOLDER`, and the write declares
  another transaction (denied: 403).

Locked objects are stamped with the marker, as lockcore's acquire leaves
them, so a review models what the API server sends for them.

:func:`request_mix` lays out one cycle of requests with the default weights,
deterministically shuffled, so wrk and the open-loop generator send the same
sequence.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client

from bench.apiserver import ensure_namespace, raw_call
from lockcore.fence import Fence
from lockcore.lease import lease_body, utcnow
from lockcore.naming import ResourceKey, lease_ref
from lockcore.settings import LockSettings

NAMESPACE = "bench"
HOLDER = "bench-holder"
OTHER_TXN = "bench-intruder"
USERNAME = "bench-user"
PRINCIPAL = "bench-locker"
SIZES: tuple[str, ...] = ("cm2k", "deploy20k", "cm200k")
STATES: tuple[str, ...] = ("unlocked", "same", "other")
# Request mix per cycle: sizes 70/25/5 (small objects dominate real traffic),
# lock states 80/10/10.
SIZE_WEIGHTS: tuple[tuple[str, int], ...] = (("cm2k", 14), ("deploy20k", 5), ("cm200k", 1))
STATE_WEIGHTS: tuple[tuple[str, int], ...] = (("unlocked", 8), ("same", 1), ("other", 1))
OBJECTS_PER_GROUP = 4  # distinct objects (and so distinct lease keys) per (size, state)


@dataclass(frozen=True)
class BenchObject:
    """One real object: its size class, lock state, key and stored JSON."""

    size: str
    state: str
    key: ResourceKey
    stored: dict[str, Any]

    @property
    def collection(self) -> str:
        if self.key.group:
            return f"/apis/{self.key.group}/v1/namespaces/{self.key.namespace}/{self.key.kind.lower()}s"
        return f"/api/v1/namespaces/{self.key.namespace}/{self.key.kind.lower()}s"

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.key.name}"


def configmap(name: str, namespace: str, target_bytes: int) -> dict[str, Any]:
    """A ConfigMap of about ``target_bytes`` of JSON: config-file-like data entries."""
    line = "feature.flag.{i:05d}=enabled; threshold={i}; owner=team-{t}\n"
    data: dict[str, str] = {}
    size, entry = 300, 0
    while size < target_bytes:
        text = "".join(line.format(i=entry * 40 + j, t=j % 7) for j in range(40))
        chunk = text[: max(64, min(len(text), target_bytes - size))]
        data[f"app-{entry:03d}.properties"] = chunk
        size += len(chunk) + 30
        entry += 1
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/name": "shop", "tier": "backend"}},
            "data": data}


def deployment(name: str, namespace: str, target_bytes: int) -> dict[str, Any]:
    """A Deployment of about ``target_bytes``: a few containers with many env vars, probes, volumes."""
    def container(c: int, envs: int) -> dict[str, Any]:
        return {
            "name": f"app-{c}", "image": f"registry.example.com/shop/app-{c}:1.{c}.7",
            "args": ["--config=/etc/app/app.yaml", "--log-format=json", f"--shard={c}"],
            "ports": [{"name": "http", "containerPort": 8080 + c, "protocol": "TCP"}],
            "env": [{"name": f"SHOP_SETTING_{c}_{i:03d}", "value": f"value-{i}-{'x' * (i % 23)}"}
                    for i in range(envs)],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "1", "memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080 + c}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080 + c}, "periodSeconds": 10},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
        }

    def build(envs: int) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": name, "tier": "frontend"}
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [container(c, envs) for c in range(3)],
                             "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}]},
                },
            },
        }

    envs = 8
    while len(json.dumps(build(envs))) < target_bytes * 0.6:  # the server adds managedFields
        envs += 4
    return build(envs)


_BUILDERS = {
    "cm2k": lambda name: configmap(name, NAMESPACE, 2_000),
    "deploy20k": lambda name: deployment(name, NAMESPACE, 20_000),
    "cm200k": lambda name: configmap(name, NAMESPACE, 200_000),
}


def create_objects(api: client.ApiClient, settings: LockSettings) -> list[BenchObject]:
    """Create (or read back) every benchmark object and the Leases of the locked ones."""
    ensure_namespace(api, NAMESPACE)
    now = utcnow()
    out: list[BenchObject] = []
    for size in SIZES:
        for state in STATES:
            for n in range(OBJECTS_PER_GROUP):
                name = f"{size}-{state}-{n}"
                body = _BUILDERS[size](name)
                key = ResourceKey(group="apps" if body["kind"] == "Deployment" else "",
                                  kind=body["kind"], namespace=NAMESPACE, name=name)
                obj = BenchObject(size, state, key, {})
                status, stored = raw_call(api, "POST", obj.collection, body)
                if status == 409:
                    status, stored = raw_call(api, "GET", obj.path)
                if status not in (200, 201):
                    raise RuntimeError(f"creating {obj.path}: HTTP {status}: {str(stored)[:300]}")
                if state != "unlocked":
                    stored = _locked(api, obj, settings, now)
                out.append(BenchObject(size, state, key, stored))
    return out


def _locked(api: client.ApiClient, obj: BenchObject, settings: LockSettings, now: datetime) -> dict[str, Any]:
    """Lock ``obj`` as lockcore leaves it (its Lease, then the marker beside the principal); its stored JSON.

    Without the marker the webhook would refuse every write of it (a write of a
    live-locked object must keep it), and the mix's "same" writes would count
    as denials.
    """
    key, ref = obj.key, lease_ref(obj.key, settings)
    lease = lease_body(namespace=ref.namespace, name=ref.name, key=key, txn=HOLDER, duration_seconds=3 * 3600,
                       now=now, principal=PRINCIPAL, profile=settings.profile)
    lpath = f"/apis/coordination.k8s.io/v1/namespaces/{ref.namespace}/leases"
    lstatus, lbody = raw_call(api, "POST", lpath, lease)
    if lstatus == 409:  # rerun: refresh it
        lstatus, lbody = raw_call(api, "PUT", f"{lpath}/{ref.name}", _refreshed(api, f"{lpath}/{ref.name}", lease))
    if lstatus not in (200, 201):
        raise RuntimeError(f"lease {ref}: HTTP {lstatus}: {str(lbody)[:300]}")
    Fence(api).stamp(key, HOLDER, PRINCIPAL)
    status, stored = raw_call(api, "GET", obj.path)
    if status != 200:
        raise RuntimeError(f"reading {obj.path}: HTTP {status}: {str(stored)[:300]}")
    return dict(stored)


def _refreshed(api: client.ApiClient, path: str, lease: dict[str, Any]) -> dict[str, Any]:
    _, current = raw_call(api, "GET", path)
    fresh = copy.deepcopy(lease)
    fresh["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    return fresh


def modified(obj: BenchObject, settings: LockSettings, serial: int) -> dict[str, Any]:
    """The object as a client would write it: a changed field, and the declared transaction."""
    new = copy.deepcopy(obj.stored)
    meta = new.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    annotations["bench.leasegate.io/serial"] = str(serial)
    if obj.state == "same":
        annotations[settings.txn_annotation] = HOLDER
    elif obj.state == "other":
        annotations[settings.txn_annotation] = OTHER_TXN
    return new


def review(obj: BenchObject, settings: LockSettings, serial: int) -> dict[str, Any]:
    """The AdmissionReview (UPDATE) the apiserver sends for a write of ``obj``."""
    key = obj.key
    group_version = {"group": key.group, "version": "v1"}
    resource = key.kind.lower() + "s"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"00000000-0000-4000-8000-{serial:012d}",
            "kind": {**group_version, "kind": key.kind},
            "resource": {**group_version, "resource": resource},
            "requestKind": {**group_version, "kind": key.kind},
            "requestResource": {**group_version, "resource": resource},
            "name": key.name,
            "namespace": key.namespace,
            "operation": "UPDATE",
            "userInfo": {"username": USERNAME, "uid": "5d3c7c2e-bench",
                         "groups": ["developers", "system:authenticated"]},
            "object": modified(obj, settings, serial),
            "oldObject": obj.stored,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions",
                        "fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"},
        },
    }


def request_mix(objects: Sequence[BenchObject], settings: LockSettings, *,
                seed: int = 7) -> list[tuple[BenchObject, bytes]]:
    """One cycle of (object, review body): the weighted mix, shuffled with a fixed seed."""
    by_group: dict[tuple[str, str], list[BenchObject]] = {}
    for obj in objects:
        by_group.setdefault((obj.size, obj.state), []).append(obj)
    slots = [(size, state) for size, sw in SIZE_WEIGHTS for state, tw in STATE_WEIGHTS
             for _ in range(sw * tw)]
    random.Random(seed).shuffle(slots)
    used: dict[tuple[str, str], int] = {}
    out: list[tuple[BenchObject, bytes]] = []
    for serial, group in enumerate(slots):
        members = by_group[group]
        obj = members[used.get(group, 0) % len(members)]
        used[group] = used.get(group, 0) + 1
        body = json.dumps(review(obj, settings, serial), separators=(",", ":")).encode()
        out.append((obj, body))
    return out


def expected_denials(mix: Sequence[tuple[BenchObject, bytes]]) -> float:
    """Fraction of the mix that a correct webhook in deny mode refuses."""
    return sum(1 for obj, _ in mix if obj.state == "other") / len(mix)
