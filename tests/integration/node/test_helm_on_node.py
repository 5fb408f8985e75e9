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
import os
import signal
import subprocess
import sys
import threading
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
from lockcore.holding import hold
from lockcore.ledger import list_ledger
from lockcore.settings import LockSettings
from tests.integration.node.conftest import NodeApi, NodeHelm, NodeKubectl
from tests.integration.node.netcheck import assert_host_untouched, assert_node_has_no_way_out, assert_pod_has_no_way_out
from tests.integration.node.traffic import DENIED, FAILED_CALL, TXN_ANNOTATION, Traffic
from tests.support.calls import status_of
from tests.support.helm import CHART
from tools.localwebhook import as_body, grant_edit
from tools.node import host
from tools.node.cluster import NODE_NAME, LocalNode
from tools.node.image import WEBHOOK_IMAGE

# The first node test also starts the node (and builds its images if `make node-tools` did not).
pytestmark = [pytest.mark.integration, pytest.mark.node, pytest.mark.timeout(600)]

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

    def pods(self, terminating: bool = False) -> list[Any]:
        """The release's pods; ``terminating`` includes those being deleted (they serve until they exit)."""
        return [p for p in client.CoreV1Api(self.admin).list_namespaced_pod(NS, label_selector=SELECTOR).items
                if terminating or p.metadata.deletion_timestamp is None]

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
    # kubectl logs: the API server reaches the kubelet (InternalIP, client certificate, webhook authz).
    logs = release.kubectl("logs", "-n", NS, pods[0].metadata.name).stdout
    assert logs.strip() and all(line.startswith("{") for line in logs.splitlines()), logs[:500]


def test_pods_and_node_have_no_way_out(release: Release) -> None:
    """With the pods running: one veth per pod on the bridge, no default route anywhere, host untouched."""
    pods = release.wait_ready(2)
    wait_for(lambda: len(release.pods(terminating=True)) == 2, "no terminating pod (the demo's)", timeout=60)
    assert assert_node_has_no_way_out(release.node) == len(pods)
    for pod in pods:
        assert_pod_has_no_way_out(container_pids(release.node, pod.metadata.uid)[0])
    assert_host_untouched()


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


# -- 2. HA drills, writes flowing the whole time ---------------------------------------------


def assert_clean(flow: Traffic) -> None:
    """Every write got the answer the lock demands, and every call reached a pod."""
    assert len(flow.outcomes) >= 30, flow.summary()
    assert not flow.failed_calls(), (flow.summary(), flow.failed_calls()[:3])
    assert not flow.wrong_answers(), (flow.summary(), flow.wrong_answers()[:3])


def test_deleting_a_webhook_pod_fails_no_admission(release: Release, shop: Shop, node_api: NodeApi) -> None:
    victim = release.wait_ready(2)[0].metadata.name

    def drill() -> None:
        client.CoreV1Api(release.admin).delete_namespaced_pod(victim, NS)
        release.wait_ready(2)
        assert victim not in {p.metadata.name for p in release.pods()}
    assert_clean(drive(shop, node_api, drill))


def evict(release: Release, pod: str) -> None:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=NS))
    client.CoreV1Api(release.admin).create_namespaced_pod_eviction(pod, NS, body)


def test_pdb_lets_one_pod_be_evicted_not_two(release: Release) -> None:
    first, second = (p.metadata.name for p in release.wait_ready(2))
    policy = client.PolicyV1Api(release.admin)
    wait_for(lambda: policy.read_namespaced_pod_disruption_budget(FULLNAME, NS).status.disruptions_allowed == 1,
             "the disruption controller to allow one disruption")
    evict(release, first)
    with pytest.raises(ApiException) as refused:
        evict(release, second)
    assert refused.value.status == 429 and "disruption budget" in str(refused.value.body)
    release.wait_ready(2)


def sample_ready_endpoints(release: Release, stop: threading.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(release.ready_endpoints())
        time.sleep(0.2)


def test_rolling_upgrade_fails_no_admission(release: Release, shop: Shop, node_api: NodeApi) -> None:
    """A config change rolls the Deployment (maxUnavailable 0): some pod always serves, no call fails."""
    old = {p.metadata.name for p in release.wait_ready(2)}
    seen: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_ready_endpoints, args=(release, stop, seen), daemon=True)

    def drill() -> None:
        sampler.start()
        try:
            release.helm("upgrade", RELEASE, str(CHART), "-n", NS, "--reuse-values",
                         "--set", "config.logLevel=DEBUG", "--wait", "--timeout=180s")
            new = {p.metadata.name for p in release.wait_ready(2)}
        finally:
            stop.set()
            sampler.join()
        assert not new & old, "the upgrade rolled every pod"
    assert_clean(drive(shop, node_api, drill))
    print(f"ready endpoints during the rollout: min {min(seen)}, max {max(seen)}, {len(seen)} samples")
    assert min(seen) >= 1


def test_certificate_rotation_fails_no_handshake(release: Release, shop: Shop, node_api: NodeApi) -> None:
    """Raising tls.selfSigned.generation: new CA and certificate, pods switch, no call fails on TLS."""
    old_cert = release.secret()["tls.crt"]

    def serving(cert: str) -> bool:
        pods = release.ready_pods()
        return len(pods) == 2 and all(release.served_certificate(p.status.pod_ip).strip() == cert.strip()
                                      for p in pods)

    def drill() -> None:
        release.helm("upgrade", RELEASE, str(CHART), "-n", NS, "--reuse-values",
                     "--set", "tls.selfSigned.generation=2", "--wait", "--timeout=180s")
        new_cert = release.secret()["tls.crt"]
        assert new_cert != old_cert
        begin = time.monotonic()
        wait_for(lambda: serving(new_cert), "both pods serving the new certificate", timeout=150, interval=1)
        print(f"\npods served the new certificate {time.monotonic() - begin:.1f}s after the upgrade")
        # The next upgrade drops the old CA from the caBundle: the pods must already serve the new one.
        release.helm("upgrade", RELEASE, str(CHART), "-n", NS, "--reuse-values", "--wait", "--timeout=180s")
    assert_clean(drive(shop, node_api, drill))


LEDGER_FLUSH_SECONDS = 5.0  # the chart's default ledgerFlushSeconds


def bob_refusals_in_ledger(release: Release, shop: Shop) -> int:
    """What the namespace's Report counts for bob's writes of the locked object."""
    entries = list_ledger(release.admin, shop.namespace) or []
    return sum(e.count for e in entries if e.write.user == "bob" and e.write.name == shop.locked)


def storm(bob: client.CoreV1Api, shop: Shop, stop: threading.Event, refused_at: list[float]) -> None:
    """bob patches the locked object until ``stop``; each refusal *by a pod* is timed."""
    while not stop.is_set():
        try:
            bob.patch_namespaced_config_map(shop.locked, shop.namespace, {"data": {"storm": "bob"}},
                                            _preload_content=False)
        except ApiException as exc:
            if exc.status == 403 and DENIED in str(exc.body):
                refused_at.append(time.monotonic())


def test_a_pod_killed_mid_storm_loses_at_most_its_last_flush_interval(
        release: Release, shop: Shop, node_api: NodeApi, figures: Any) -> None:
    """docs/webhook.md "Loss bound": SIGKILL (no worker_exit) loses at most the last ``ledgerFlushSeconds``."""
    pods = release.wait_ready(2)
    time.sleep(LEDGER_FLUSH_SECONDS + 2)  # earlier drills' refusals are flushed: a stable baseline
    before = bob_refusals_in_ledger(release, shop)
    judged = {p.metadata.name: admissions(release.scrape(p.metadata.name)) for p in pods}
    stop, refused_at = threading.Event(), list[float]()
    writers = [threading.Thread(target=storm, args=(client.CoreV1Api(node_api("bob")), shop, stop, refused_at))
               for _ in range(4)]
    for writer in writers:
        writer.start()
    time.sleep(2 * LEDGER_FLUSH_SECONDS)
    # The API server keeps its connection to the Service, so one pod may get every call: kill that one.
    busiest = max(pods, key=lambda p: admissions(release.scrape(p.metadata.name)) - judged[p.metadata.name])
    assert admissions(release.scrape(busiest.metadata.name)) > judged[busiest.metadata.name]
    killed_at = time.monotonic()
    for pid in container_pids(release.node, busiest.metadata.uid):  # arbiter and workers at once: no flush
        os.kill(pid, signal.SIGKILL)
    time.sleep(LEDGER_FLUSH_SECONDS)
    stop.set()
    for writer in writers:
        writer.join()
    seen = len(refused_at)
    # The survivor flushes within its interval; nothing the killed pod held can arrive any more.
    time.sleep(LEDGER_FLUSH_SECONDS + 2)
    counted = bob_refusals_in_ledger(release, shop) - before
    lost = seen - counted
    window = sum(1 for at in refused_at if killed_at - LEDGER_FLUSH_SECONDS - 1 < at <= killed_at + 1)
    figures(f"ledger on the node: {seen} refusals by the pods in {3 * LEDGER_FLUSH_SECONDS:.0f}s from 4 "
            f"clients, one pod SIGKILLed mid-storm: {counted} in the ledger, {lost} lost (bound: the {window} "
            f"refused in the {LEDGER_FLUSH_SECONDS + 2:.0f}s around the kill)")
    assert 0 <= lost <= window, (seen, counted, window)
    release.wait_ready(2)  # the kubelet restarts the killed container


def test_scaled_to_zero_locked_writes_refused_per_failure_policy(
        release: Release, shop: Shop, node_api: NodeApi, node_kubectl: NodeKubectl) -> None:
    node_kubectl("scale", "deployment", FULLNAME, "-n", NS, "--replicas=0")
    # Terminating pods still serve (preStop), and kube-proxy still sends to them when no
    # ready endpoint is left: wait until they are gone for good.
    wait_for(lambda: not release.pods(terminating=True), "no webhook pod at all", timeout=90)
    flow = drive(shop, node_api, lambda: None, settle=1.0)
    # failurePolicy Fail: every write of the locked object needs the webhook's answer and is refused,
    # none is judged wrongly; creates never need it (the reservation policy judges them in the API server).
    locked = [o for o in flow.outcomes if o.kind != "create"]
    assert locked and len(flow.failed_calls()) == len(locked), flow.summary()
    assert all(o.allowed for o in flow.outcomes if o.kind == "create"), flow.summary()


def test_scaled_to_zero_only_locked_objects_wait_and_holders_keep_working(
        release: Release, shop: Shop, node_api: NodeApi, node_kubectl: NodeKubectl, figures: Any) -> None:
    """The outage drill (docs/INVARIANTS.md, "outage radius"): no webhook pod, failurePolicy Fail."""
    assert not release.pods(terminating=True)
    admin, bob_api = node_api("admin"), node_api("bob")
    core, bob = client.CoreV1Api(admin), client.CoreV1Api(bob_api)
    spaces = [f"{shop.namespace}-out{i}" for i in range(10)]
    try:
        started = time.monotonic()
        for name in spaces:  # Namespaces are cluster-scoped creates too
            core.create_namespace(as_body({"metadata": {"name": name}}), _preload_content=False)
            grant_edit(admin, name)
        for i in range(100):
            for name in spaces:
                bob.create_namespaced_config_map(name, as_body({"metadata": {"name": f"cm-{i}"}}),
                                                 _preload_content=False)
        rbac = client.RbacAuthorizationV1Api(admin)
        for i in range(20):
            rbac.create_cluster_role(as_body({"metadata": {"name": f"outage-{shop.namespace}-{i}"}, "rules": []}),
                                     _preload_content=False)
        creates = time.monotonic() - started
        alice = shop.manager
        free = ResourceKey("", "ConfigMap", shop.namespace, shop.unlocked)
        reserved = ResourceKey("", "ConfigMap", shop.namespace, "outage-reserved")
        with hold(alice, [free, reserved], "t-outage", ttl=3) as held:
            held_at = time.monotonic()
            assert status_of(bob.patch_namespaced_config_map, shop.unlocked, shop.namespace, {"data": {"v": "b"}}) >= 400
            assert status_of(bob.delete_namespaced_config_map, shop.unlocked, shop.namespace) >= 400
            assert status_of(bob.create_namespaced_config_map, shop.namespace,
                             as_body({"metadata": {"name": "outage-reserved"}})) == 403
            lease = alice.ref_for(free)
            leases = client.CoordinationV1Api(bob_api)
            assert status_of(leases.patch_namespaced_lease, lease.name, lease.namespace,
                             {"spec": {"holderIdentity": "bob"}}) >= 400
            assert status_of(leases.delete_namespaced_lease, lease.name, lease.namespace) >= 400
            time.sleep(max(0.0, 9.5 - (time.monotonic() - held_at)))  # three TTLs of renewals
            held.check()
        bob.patch_namespaced_config_map(shop.unlocked, shop.namespace, {"data": {"v": "bob-after"}})
        bob.create_namespaced_config_map(shop.namespace, as_body({"metadata": {"name": "outage-reserved"}}))
        figures(f"outage drill on the node (no webhook pod): 1,000 ConfigMaps in 10 new namespaces and 20 "
                f"ClusterRoles created in {creates:.1f}s, 0 refused; a lock acquired, held through 3 TTLs and "
                f"released; bob's write, delete, reserved create and Lease patch/delete refused")
    finally:
        node_kubectl("scale", "deployment", FULLNAME, "-n", NS, "--replicas=2")
        release.wait_ready(2)
        for name in spaces:
            core.delete_namespace(name, _preload_content=False)
    # Back to normal: the pods judge the locked object again.
    assert status_of(bob.patch_namespaced_config_map, shop.locked, shop.namespace, {"data": {"v": "bob"}}) == 403


# -- 4. uninstall --------------------------------------------------------------------------


def test_helm_uninstall_leaves_no_webhook_registration(
        release: Release, shop: Shop, node_api: NodeApi, node_helm: NodeHelm) -> None:
    release.wait_ready(2)
    node_helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout=120s")
    admission = client.AdmissionregistrationV1Api(release.admin)
    assert admission.list_validating_webhook_configuration().items == []
    assert admission.list_mutating_webhook_configuration().items == []
    wait_for(lambda: not release.pods(terminating=True), "the webhook pods to be gone", timeout=60)
    # Nothing wedged: bob's write of the still-locked object is no longer judged by anyone.
    client.CoreV1Api(node_api("bob")).patch_namespaced_config_map(
        shop.locked, shop.namespace, {"metadata": {"annotations": {"by": "bob-after-uninstall"}}})
