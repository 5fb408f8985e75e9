"""Paths around a lock an outside acceptance run found (issue 12), closed and proved on the real API server.

Status-subresource writes that change metadata, a namespace label that would
weaken enforcement (test_enforcement.py), lock theft through Lease writes,
the holder's own scale, and clients that retried a refusal as a conflict.
The webhook runs with default settings and the chart's registration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lockcore.kube import LOCKED_LABEL
from lockcore.manager import LeaseManager
from lockcore.naming import LeaseRef, ResourceKey
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tools.localcluster import LocalCluster, running
from tools.localwebhook import (
    RunningWebhook,
    as_body,
    ensure_namespace,
    grant_edit,
    guard,
    register_webhook,
    start_webhook,
    wait_for,
)

pytestmark = pytest.mark.integration


def deployment(namespace: str, name: str = "web") -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]}}}}


def locked_deployment(api_client: ApiClientFactory, namespace: str, txn: str = "t1") -> ResourceKey:
    client.AppsV1Api(api_client("admin")).create_namespaced_deployment(
        namespace, as_body(deployment(namespace)), _preload_content=False)
    key = ResourceKey("apps", "Deployment", namespace, "web")
    LeaseManager(api_client("alice")).acquire(key, txn, 600)
    return key


def denials(webhook: RunningWebhook) -> float:
    return webhook.metric("leasegate_admission_decisions_total", result="deny")


def test_status_writes_that_change_metadata_are_judged(
        locked_ns: str, api_client: ApiClientFactory, kubectl: KubectlRunner) -> None:
    locked_deployment(api_client, locked_ns)
    out = kubectl("patch", "deployment", "web", "-n", locked_ns, "--subresource=status", "--type=merge",
                  "-p", '{"metadata":{"annotations":{"stolen":"yes"}}}', check=False)
    assert out.returncode != 0 and "locked by transaction 't1'" in out.stderr, out.stderr
    # A Deployment's /status drops label changes itself ("no change"): nothing is stored either way.
    kubectl("patch", "deployment", "web", "-n", locked_ns, "--subresource=status", "--type=merge",
            "-p", '{"metadata":{"labels":{"stolen":"yes"}}}', check=False)
    stored = client.AppsV1Api(api_client("admin")).read_namespaced_deployment("web", locked_ns)
    assert "stolen" not in (stored.metadata.annotations or {}) and "stolen" not in stored.metadata.labels
    # A write of .status alone (what controllers do) still passes, lock or not.
    kubectl("patch", "deployment", "web", "-n", locked_ns, "--subresource=status", "--type=merge",
            "-p", '{"status":{"observedGeneration":1}}')


def test_a_locked_namespace_cannot_be_relabelled_through_its_status(
        api_client: ApiClientFactory, kubectl: KubectlRunner, shipped_webhook: RunningWebhook) -> None:
    admin = api_client("admin")
    name = f"locked-ns-{int(time.time() * 1000) % 10**8}"
    client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": name, "labels": {
        "leasegate.test/webhook-object": shipped_webhook.key}}}), _preload_content=False)
    ensure_namespace(admin, "leasegate-system")  # the lock namespace of cluster-scoped objects
    try:
        LeaseManager(api_client("admin")).acquire(ResourceKey("", "Namespace", "", name), "t1", 600)
        out = kubectl("patch", "namespace", name, "--subresource=status", "--type=merge",
                      "-p", '{"metadata":{"labels":{"leasegate.io/enforcement":"dryrun"}}}', user="admin",
                      check=False)
        assert out.returncode != 0 and "locked by transaction 't1'" in out.stderr, out.stderr
        assert f"namespace/{name} (status) is locked" in out.stderr
    finally:
        LeaseManager(admin).force_release(LeaseRef("leasegate-system", f"lgc.namespace.{name}"))
        client.CoreV1Api(admin).delete_namespace(name)


def test_a_live_lock_lease_is_changed_only_by_its_holder_or_an_admin(
        locked_ns: str, api_client: ApiClientFactory, kubectl: KubectlRunner) -> None:
    key = ResourceKey("", "ConfigMap", locked_ns, "cfg")
    client.CoreV1Api(api_client("admin")).create_namespaced_config_map(
        locked_ns, as_body({"metadata": {"name": "cfg"}}), _preload_content=False)
    alice = LeaseManager(api_client("alice"))
    ref = alice.acquire(key, "t1", 2)
    # bob has full RBAC on Leases here: the webhook, not RBAC, keeps him out.
    for attempt in (["delete", "lease", ref.name], ["annotate", "lease", ref.name, "x=1"],
                    ["label", "lease", ref.name, "leasegate.io/transaction=t2", "--overwrite"]):
        out = kubectl(*attempt, "-n", locked_ns, user="bob", check=False)
        assert out.returncode != 0 and "only 'alice' may renew, change or release it" in out.stderr, out.stderr
    alice.renew(ref, "t1", 2)  # the holder's own conditional writes keep working
    assert alice.get_lock(ref) is not None
    # Once expired (2 s + the 2 s skew margin), anyone may take it over, as ever.
    time.sleep(4.5)
    LeaseManager(api_client("bob")).acquire(key, "t2", 600)
    # An administrator (lock admin group system:masters) always gets out.
    assert LeaseManager(api_client("admin")).force_release(ref)
    labels = client.CoreV1Api(api_client("admin")).read_namespaced_config_map("cfg", locked_ns).metadata.labels
    assert LOCKED_LABEL not in (labels or {})


def test_the_holder_scales_and_others_are_refused_once_and_fast(
        locked_ns: str, api_client: ApiClientFactory, kubectl: KubectlRunner, shipped_webhook: RunningWebhook) -> None:
    locked_deployment(api_client, locked_ns)
    before = denials(shipped_webhook)
    started = time.monotonic()
    out = kubectl("scale", "deployment/web", "-n", locked_ns, "--replicas=3", user="bob", check=False, timeout=20)
    elapsed = time.monotonic() - started
    assert out.returncode != 0 and out.stderr.count("locked by transaction 't1'") == 1, out.stderr
    assert "only user 'alice' who acquired the lock may scale it" in out.stderr
    assert elapsed < 5, f"kubectl scale took {elapsed:.2f} s: a refusal must not be retried (it spun 25 s on 409)"
    # Scales are the reservation policy's, in the API server: the webhook is not even called.
    assert denials(shipped_webhook) - before == 0, "a scale reached the webhook"
    kubectl("scale", "deployment/web", "-n", locked_ns, "--replicas=3", user="alice")
    assert client.AppsV1Api(api_client("admin")).read_namespaced_deployment("web", locked_ns).spec.replicas == 3


@pytest.fixture
def locked_cm(locked_ns: str, api_client: ApiClientFactory) -> Iterator[str]:
    client.CoreV1Api(api_client("admin")).create_namespaced_config_map(
        locked_ns, as_body({"metadata": {"name": "cfg"}, "data": {"k": "v1"}}), _preload_content=False)
    LeaseManager(api_client("alice")).acquire(ResourceKey("", "ConfigMap", locked_ns, "cfg"), "t1", 600)
    yield locked_ns


@pytest.mark.parametrize("command", ["apply", "edit", "annotate"])
def test_kubectl_shows_a_refusal_once_without_retrying(
        command: str, locked_cm: str, kubectl: KubectlRunner, shipped_webhook: RunningWebhook, tmp_path: Any) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": locked_cm},
                "data": {"k": "v2"}}
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/k: v1/k: v3/' \"$1\"\n")
    editor.chmod(0o755)
    args = {"apply": ["apply", "-f", "-"], "edit": ["edit", "configmap", "cfg", "-n", locked_cm],
            "annotate": ["annotate", "configmap", "cfg", "-n", locked_cm, "x=1"]}[command]
    before = denials(shipped_webhook)
    started = time.monotonic()
    out = kubectl(*args, user="bob", check=False, input=json.dumps(manifest),
                  env={"KUBE_EDITOR": str(editor)}, timeout=20)
    elapsed = time.monotonic() - started
    assert out.returncode != 0 and "locked by transaction 't1'" in out.stderr, out.stderr
    assert elapsed < 5, f"kubectl {command} took {elapsed:.2f} s"
    assert denials(shipped_webhook) - before == 1, "the refusal was retried"


def test_a_retry_on_conflict_loop_stops_at_the_first_refusal(locked_cm: str, api_client: ApiClientFactory) -> None:
    """What client-go's RetryOnConflict (and every controller's requeue on 409) does with the answer."""
    core = client.CoreV1Api(api_client("bob"))
    attempts, status = 0, 0
    for _ in range(5):  # client-go's DefaultRetry: 5 steps
        attempts += 1
        try:
            current = core.read_namespaced_config_map("cfg", locked_cm)
            current.data = {"k": "v9"}
            core.replace_namespaced_config_map("cfg", locked_cm, current)
        except ApiException as exc:
            status = int(exc.status)
            if status == 409:  # errors.IsConflict: read again and retry
                continue
        break
    assert (attempts, status) == (1, 403)


@pytest.fixture(scope="module")
def with_controllers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, RunningWebhook]]:
    """A control plane of its own with the real kube-controller-manager, and the shipped webhook on it."""
    workdir = tmp_path_factory.mktemp("kcm")
    with running(workdir / "cluster", controller_manager=True) as cluster:
        webhook = start_webhook(workdir, cluster.kubeconfig_for("admin"), "kcm")
        try:
            register_webhook(config.new_client_from_config(str(cluster.kubeconfig_for("admin"))), webhook)
            yield cluster, webhook
        finally:
            webhook.stop()


def test_a_locked_deployment_still_rolls_out_for_its_holder(
        with_controllers: tuple[LocalCluster, RunningWebhook]) -> None:
    """The deployment controller's writes (status, revision annotation, ReplicaSets) are not the lock's business."""
    cluster, webhook = with_controllers
    admin = config.new_client_from_config(str(cluster.kubeconfig_for("admin")))
    alice = config.new_client_from_config(str(cluster.kubeconfig_for("alice")))
    namespace = "rollout"
    client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": namespace}}), _preload_content=False)
    grant_edit(admin, namespace, locks=True)
    guard(admin, namespace, webhook.key)
    apps = client.AppsV1Api(admin)
    apps.create_namespaced_deployment(namespace, as_body(deployment(namespace)), _preload_content=False)

    def rolled_out(revision: str) -> bool:
        stored = apps.read_namespaced_deployment("web", namespace)
        current = (stored.metadata.annotations or {}).get("deployment.kubernetes.io/revision")
        return bool(stored.status.observed_generation == stored.metadata.generation and current == revision)

    wait_for(lambda: rolled_out("1"), timeout=90)  # the controller has seen the first template
    LeaseManager(alice).acquire(ResourceKey("apps", "Deployment", namespace, "web"), "t1", 600)
    patch = {"metadata": {"annotations": {"leasegate.io/transaction": "t1"}},
             "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.invalid/app:2"}]}}}}
    client.AppsV1Api(alice).patch_namespaced_deployment("web", namespace, patch, _preload_content=False)
    try:
        wait_for(lambda: rolled_out("2"), timeout=90)
    except TimeoutError:
        stored = apps.read_namespaced_deployment("web", namespace)
        raise AssertionError(f"not rolled out: {stored.metadata.annotations} {stored.status}\n"
                             + "\n".join(webhook.log_file.read_text().splitlines()[-20:])) from None
    stored = apps.read_namespaced_deployment("web", namespace)
    assert stored.metadata.labels[LOCKED_LABEL] == "t1", "still locked while it rolled out"
