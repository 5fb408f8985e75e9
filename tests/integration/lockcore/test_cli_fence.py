"""The fence through the CLI: acquire marks, release unmarks, --no-fence, prune, apply of a locked name."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.kube import LOCKED_LABEL
from lockcore.settings import LockSettings
from tests.support.calls import status_of
from tests.support.cli import lockcore, plugin_env
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tools.localcluster import LocalCluster
from tools.localwebhook import as_body, wait_for

pytestmark = pytest.mark.integration


def labels(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    return dict(client.CoreV1Api(api).read_namespaced_config_map(name, namespace).metadata.labels or {})


def test_acquire_marks_release_unmarks_and_no_fence_does_not(
        cluster: LocalCluster, namespace: str, kubectl: KubectlRunner, api_client: ApiClientFactory) -> None:
    admin = api_client("admin")
    kubectl("create", "configmap", "cfg", "-n", namespace)
    ns = ["-n", namespace]
    assert lockcore(cluster, "acquire", "cm/cfg", *ns, "--txn", "t1", "--ttl", "5m").returncode == 0
    assert labels(admin, namespace, "cfg")[LOCKED_LABEL] == "t1"
    assert lockcore(cluster, "release", "cm/cfg", *ns, "--txn", "t1").returncode == 0
    assert LOCKED_LABEL not in labels(admin, namespace, "cfg")
    advisory = lockcore(cluster, "acquire", "cm/cfg", *ns, "--txn", "t2", "--ttl", "5m", "--no-fence")
    assert advisory.returncode == 0, advisory.stderr
    assert LOCKED_LABEL not in labels(admin, namespace, "cfg")
    status = json.loads(lockcore(cluster, "status", "cm/cfg", *ns, "-o", "json").stdout)
    assert status["locked"] and status["txn"] == "t2"


def test_prune_lists_stale_markers_and_removes_them_only_when_asked(
        cluster: LocalCluster, namespace: str, kubectl: KubectlRunner, api_client: ApiClientFactory) -> None:
    admin = api_client("admin")
    for name in ("crashed", "locked", "plain"):
        kubectl("create", "configmap", name, "-n", namespace)
    kubectl("label", "configmap", "crashed", "-n", namespace, f"{LOCKED_LABEL}=t9")  # its holder died
    ns = ["-n", namespace]
    assert lockcore(cluster, "acquire", "cm/locked", *ns, "--txn", "t1", "--ttl", "5m").returncode == 0
    listed = lockcore(cluster, "prune", *ns, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    stale = json.loads(listed.stdout)["stale"]
    assert [(s["object"], s["txn"], s["why"], s["removed"]) for s in stale] == [
        (f"configmap/crashed -n {namespace}", "t9", "no lease", False)]
    assert labels(admin, namespace, "crashed")[LOCKED_LABEL] == "t9", "a dry run removes nothing"
    human = lockcore(cluster, "prune", *ns)
    assert "would remove (--apply)" in human.stdout and "configmap/crashed" in human.stdout
    applied = lockcore(cluster, "prune", *ns, "--apply")
    assert applied.returncode == 0 and "yes" in applied.stdout, applied.stdout + applied.stderr
    assert LOCKED_LABEL not in labels(admin, namespace, "crashed")
    assert labels(admin, namespace, "locked")[LOCKED_LABEL] == "t1", "a live lock's marker stays"
    assert lockcore(cluster, "prune", *ns).stdout.strip() == "no expired locks or stale markers"


def test_prune_releases_a_crashed_holders_reservation(
        cluster: LocalCluster, locked_ns: str, api_client: ApiClientFactory) -> None:
    # alice locks a name that does not exist yet for 1 s and crashes: never renewed, never released.
    ns = ["-n", locked_ns]
    taken = lockcore(cluster, "acquire", "cm/ghost", *ns, "--txn", "t7", "--ttl", "1s", user="alice")
    assert taken.returncode == 0, taken.stderr
    time.sleep(1 + LockSettings().clock_skew_seconds + 0.5)
    bob = client.CoreV1Api(api_client("bob"))
    ghost = as_body({"metadata": {"name": "ghost"}})
    with pytest.raises(ApiException) as refused:  # CEL has no clock: an expired lock still reserves its name
        bob.create_namespaced_config_map(locked_ns, ghost, _preload_content=False)
    assert refused.value.status == 403 and "t7" in str(refused.value.body)
    listed = json.loads(lockcore(cluster, "prune", *ns, "-o", "json", user="bob").stdout)
    assert [(e["object"], e["txn"], e["removed"]) for e in listed["expired"]] == [
        (f"configmap/ghost -n {locked_ns}", "t7", False)]
    applied = lockcore(cluster, "prune", *ns, "--apply", user="bob")  # anyone may release an expired lock
    assert applied.returncode == 0 and "yes" in applied.stdout, applied.stdout + applied.stderr
    assert client.CoordinationV1Api(api_client("admin")).list_namespaced_lease(locked_ns).items == []
    # The policy drops the Lease within its informer's delivery (milliseconds here).
    wait_for(lambda: status_of(bob.create_namespaced_config_map, locked_ns, ghost) == 201, timeout=10)


def test_kubectl_lock_apply_creates_a_locked_name_marked(
        cluster: LocalCluster, namespace: str, kubectl: KubectlRunner, api_client: ApiClientFactory) -> None:
    ns = ["-n", namespace]
    assert lockcore(cluster, "acquire", "cm/new", *ns, "--txn", "t1", "--ttl", "5m").returncode == 0
    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new", "namespace": namespace},
                           "data": {"k": "v"}})
    kubectl("lock", "apply", "-f", "-", "--txn", "t1", input=manifest, env=plugin_env(cluster))
    created = client.CoreV1Api(api_client("admin")).read_namespaced_config_map("new", namespace).metadata
    assert created.labels[LOCKED_LABEL] == "t1" and created.annotations["leasegate.io/transaction"] == "t1"
