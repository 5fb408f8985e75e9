"""charts/leasegate installed by the real helm on a real node, its pods running the image the Dockerfile builds.

One release for the module, installed as the README says (with the locally
built image and ``imagePullPolicy: Never``: there is no registry), then, in
order: the lock story through the Service path, the pod's hardening, the HA
drills with writes flowing (pod loss and the PDB, a rolling upgrade,
certificate rotation, scale to zero) and the uninstall. Tests of this module
depend on that order (pytest runs a module top to bottom).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore import LeaseManager, ResourceKey
from lockcore.settings import LockSettings
from tests.integration.node.conftest import NodeApi, NodeHelm, NodeKubectl
from tests.integration.node.traffic import DENIED, FAILED_CALL, TXN_ANNOTATION, Traffic
from tests.unit.charts.helm import CHART
from tools.localwebhook import as_body, grant_edit
from tools.node import host
from tools.node.cluster import NODE_NAME, LocalNode
from tools.node.image import WEBHOOK_IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.node]

RELEASE = "leasegate"
NS = "leasegate-system"
FULLNAME = "leasegate"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
TXN = "t42"
REPO, _, TAG = WEBHOOK_IMAGE.rpartition(":")
# The README's install command, plus the locally built image (no registry to pull from).
INSTALL = ["install", RELEASE, str(CHART), "-n", NS, "--create-namespace",
           "--set", f"image.repository={REPO}", "--set", f"image.tag={TAG}", "--set", "image.pullPolicy=Never"]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Release:
    node: LocalNode
    helm: NodeHelm
    kubectl: NodeKubectl
    admin: client.ApiClient
    install_seconds: float = 0.0

    def pods(self) -> list[Any]:
        return [p for p in client.CoreV1Api(self.admin).list_namespaced_pod(NS, label_selector=SELECTOR).items
                if p.metadata.deletion_timestamp is None]

    def ready_pods(self) -> list[Any]:
        return [p for p in self.pods() if p.status.phase == "Running" and any(
            c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]

    def ready_endpoints(self) -> int:
        """Ready addresses behind the webhook Service: what kube-proxy sends the API server's calls to."""
        slices = client.DiscoveryV1Api(self.admin).list_namespaced_endpoint_slice(
            NS, label_selector=f"kubernetes.io/service-name={FULLNAME}").items
        return sum(1 for s in slices for e in (s.endpoints or []) if e.conditions and e.conditions.ready)

    def wait_ready(self, replicas: int, timeout: float = 90) -> list[Any]:
        def settled() -> list[Any] | None:
            ready = self.ready_pods()
            return ready if len(ready) == replicas == len(self.pods()) == self.ready_endpoints() else None
        result: list[Any] = wait_for(settled, f"{replicas} ready webhook pods", timeout)
        return result

    def scrape(self, pod: str) -> str:
        """GET /metrics on the pod's health port, through the API server's pod proxy (inside the node)."""
        return self.kubectl("get", "--raw", f"/api/v1/namespaces/{NS}/pods/{pod}:8080/proxy/metrics").stdout

    def served_certificate(self, pod_ip: str) -> str:
        """The PEM certificate the pod serves on 8443, read from inside the node's namespace."""
        code = f"import ssl; print(ssl.get_server_certificate(({pod_ip!r}, 8443)), end='')"
        return subprocess.run([*self.node.nsenter(), sys.executable, "-c", code], capture_output=True,
                              text=True, check=True, timeout=20).stdout

    def secret(self) -> dict[str, str]:
        data = client.CoreV1Api(self.admin).read_namespaced_secret(f"{FULLNAME}-tls", NS).data
        return {k: base64.b64decode(v).decode() for k, v in data.items()}


@pytest.fixture(scope="module")
def release(node: LocalNode, node_helm: NodeHelm, node_kubectl: NodeKubectl, node_api: NodeApi) -> Iterator[Release]:
    rel = Release(node, node_helm, node_kubectl, node_api("admin"))
    begin = time.monotonic()
    node_helm(*INSTALL, "--wait", "--timeout=180s")
    rel.install_seconds = round(time.monotonic() - begin, 1)
    print(f"\nhelm install --wait: {rel.install_seconds}s")
    yield rel
    node_helm("uninstall", RELEASE, "-n", NS, "--wait", check=False)


@dataclass
class Shop:
    namespace: str
    locked: str
    unlocked: str
    manager: LeaseManager
    key: ResourceKey


@pytest.fixture(scope="module")
def shop(release: Release, node_api: NodeApi) -> Iterator[Shop]:
    """A namespace where alice and bob may edit, a ConfigMap alice locks for t42 and one nobody locks."""
    name = f"shop-{uuid.uuid4().hex[:6]}"
    admin = node_api("admin")
    client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": name}}))
    grant_edit(admin, name, locks=True)
    alice = client.CoreV1Api(node_api("alice"))
    for cm in ("settings", "scratch"):
        alice.create_namespaced_config_map(name, as_body({"metadata": {"name": cm}, "data": {"v": "1"}}))
    manager = LeaseManager(node_api("alice"), LockSettings(lock_namespace=NS))
    key = ResourceKey(group="", kind="ConfigMap", namespace=name, name="settings")
    manager.acquire(key, TXN, 900)
    yield Shop(name, "settings", "scratch", manager, key)


def traffic(shop: Shop, node_api: NodeApi) -> Traffic:
    return Traffic(node_api("alice"), node_api("bob"), shop.namespace, shop.locked, TXN)


def drive(shop: Shop, node_api: NodeApi, drill: Callable[[], None], settle: float = 2.0) -> Traffic:
    """Run ``drill`` with writes flowing before, during and ``settle`` seconds after it."""
    flow = traffic(shop, node_api).start()
    time.sleep(settle)
    try:
        drill()
        time.sleep(settle)
    finally:
        flow.stop()
    print(f"\ntraffic: {flow.summary()}")
    return flow


# -- 1. install and the lock story --------------------------------------------------------


def test_helm_install_runs_both_replicas_on_the_node(release: Release) -> None:
    pods = release.wait_ready(2, timeout=30)
    assert {p.spec.node_name for p in pods} == {NODE_NAME}
    for pod in pods:
        (status,) = pod.status.container_statuses
        assert status.image == WEBHOOK_IMAGE and status.ready and status.restart_count == 0
        assert pod.spec.containers[0].image_pull_policy == "Never"
    assert release.install_seconds < 120


def test_lock_enforced_by_the_pods_through_the_service(release: Release, shop: Shop, node_api: NodeApi) -> None:
    before = {p.metadata.name: admissions(release.scrape(p.metadata.name)) for p in release.ready_pods()}
    bob = client.CoreV1Api(node_api("bob"))
    with pytest.raises(ApiException) as refused:
        bob.patch_namespaced_config_map(shop.locked, shop.namespace, {"metadata": {"annotations": {"by": "bob"}}})
    message = str(refused.value.body)
    assert refused.value.status == 403 and DENIED in message and TXN in message, message
    assert FAILED_CALL not in message
    client.CoreV1Api(node_api("alice")).patch_namespaced_config_map(
        shop.locked, shop.namespace, {"metadata": {"annotations": {"by": "alice", TXN_ANNOTATION: TXN}}})

    def blocked_event() -> list[Any]:
        events = client.CoreV1Api(node_api("admin")).list_namespaced_event(
            shop.namespace, field_selector="reason=WriteBlocked").items
        return [e for e in events if e.involved_object.name == shop.locked]
    (event,) = wait_for(blocked_event, "a WriteBlocked Event", timeout=30)
    assert "bob" in event.message
    # The pods counted the decisions: the API server's calls reached them through the Service.
    after = {p.metadata.name: admissions(release.scrape(p.metadata.name)) for p in release.ready_pods()}
    assert sum(after.values()) >= sum(before.values()) + 2


def admissions(metrics: str) -> float:
    """Total admission decisions in a /metrics page (all labels, all gunicorn workers)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("leasegate_admission_decisions_total{"))


# -- 3. hardening, as the kernel sees it ----------------------------------------------------


def container_pids(node: LocalNode, pod_uid: str) -> list[int]:
    """PIDs of the webhook container's processes (not the pause sandbox), from the pod's cgroup."""
    pids_root = next(h for h in host.cgroup_hierarchies() if h.name in ("pids", "cgroup"))
    pod_dirs = [p for p in (pids_root / node.layout.cgroup_root).rglob(f"pod{pod_uid}") if p.is_dir()]
    assert len(pod_dirs) == 1, pod_dirs
    found = []
    for container in (d for d in pod_dirs[0].iterdir() if d.is_dir()):
        pids = [int(x) for x in (container / "cgroup.procs").read_text().split()]
        comms = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in pids}
        if comms != {"pause"}:
            found += pids
    return found


def test_pod_runs_non_root_read_only_without_capabilities(release: Release) -> None:
    pod = release.ready_pods()[0]
    pids = container_pids(release.node, pod.metadata.uid)
    assert len(pids) >= 3, "gunicorn arbiter and its workers"
    for pid in pids:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        assert status["Uid"].split() == ["10001"] * 4 and status["Gid"].split() == ["10001"] * 4
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            assert int(status[cap], 16) == 0, (pid, cap, status[cap])
        assert status["NoNewPrivs"].strip() == "1"
        mounts = {fields[4]: fields[5].split(",") for fields in
                  (line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines())}
        assert "ro" in mounts["/"], mounts["/"]
        assert "rw" in mounts["/tmp"] and "ro" in mounts["/etc/leasegate/tls"]
    # And still: it read its certificate (it serves TLS), wrote its multiprocess metric files
    # under /tmp, and serves /metrics.
    root = Path(f"/proc/{pids[0]}/root")
    metric_files = list((root / "tmp").glob("leasegate-metrics-*/*.db"))
    assert metric_files, list((root / "tmp").iterdir())
    assert all(f.stat().st_uid == 10001 for f in metric_files)
    assert release.served_certificate(pod.status.pod_ip).strip() == release.secret()["tls.crt"].strip()
    # A gauge every worker writes from its start (counters appear with their first request).
    assert "\nleasegate_lease_cache_staleness_seconds " in release.scrape(pod.metadata.name)
    write = release.kubectl("exec", "-n", NS, pod.metadata.name, "--", "python3", "-c",
                            "open('/probe', 'w')", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr
