"""The janus profile against janus v0.2.3's own requests, on the real API server (issue 23).

tests/support/janus.py sends what the operator's source sends: its Leases
(namespaced and cluster-scoped), and every step kind (Update with field
manager ``manager``, Delete, server-side apply as ``janus-<txn>`` with force
for Create and Patch, and each rollback) as the Transaction's ServiceAccount
with its own token. The webhook runs with ``profile=janus`` (and this
worktree's code) and refuses everyone else, whatever field manager they claim;
bob has full RBAC on the objects, so each refusal is the webhook's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.profiles import Profile
from tests.support.cli import plugin_env
from tests.support.cluster import ApiClientFactory
from tests.support.janus import (
    Target,
    acquire,
    create_transaction,
    install_transaction_crd,
    release,
    service_account_client,
    set_service_account,
    stored,
)
from tests.support.webhooks import WebhookFactory
from tools.localcluster import REPO_ROOT, LocalCluster
from tools.localwebhook import (
    OBJECT_SELECT_LABEL,
    RunningWebhook,
    as_body,
    grant_edit,
    guard,
    register_webhook,
    wait_for,
)

pytestmark = pytest.mark.integration
TXN = "t1"
RUNNER = "janus-runner"


def _janus_webhook(webhook_factory: WebhookFactory, api_client: ApiClientFactory, key: str,
                   lookup: str) -> RunningWebhook:
    install_transaction_crd(api_client("admin"))
    # This worktree's code, not whatever the venv's editable install points at.
    running = webhook_factory(key, profile="janus", lease_lookup=lookup, mode="deny",
                              extra_env={"PYTHONPATH": str(REPO_ROOT)})
    register_webhook(api_client("admin"), running, profile=Profile.JANUS)
    return running


@pytest.fixture(scope="module")
def janus_webhook(webhook_factory: WebhookFactory, api_client: ApiClientFactory) -> RunningWebhook:
    """The janus-profile webhook with consistent Lease lookups (deterministic)."""
    return _janus_webhook(webhook_factory, api_client, "janus", "consistent")


@pytest.fixture(scope="module")
def janus_cached(webhook_factory: WebhookFactory, api_client: ApiClientFactory) -> RunningWebhook:
    """The janus-profile webhook as shipped (cached lookups)."""
    return _janus_webhook(webhook_factory, api_client, "janus-cached", "cached")


@pytest.fixture
def janus_ns(namespace: str, api_client: ApiClientFactory, cluster: LocalCluster,
             janus_webhook: RunningWebhook) -> dict[str, Any]:
    """A namespace judged by the janus webhook, with Transaction t1 run as ``janus-runner``.

    bob (group developers), janus-runner and another account, ``other``, may edit its objects.
    """
    admin = api_client("admin")
    grant_edit(admin, namespace)
    guard(admin, namespace, janus_webhook.key)
    accounts = {name: service_account_client(cluster, admin, namespace, name) for name in (RUNNER, "other")}
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(namespace, as_body({
        "metadata": {"name": "accounts-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "developers-edit"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace} for name in accounts],
    }), _preload_content=False)
    create_transaction(admin, namespace, TXN, RUNNER)
    return {"ns": namespace, "admin": admin, "bob": api_client("bob"), **accounts}


def refused(write: Callable[[], Any]) -> str:
    """Run ``write``; it must be refused by the lock (403, naming the holder). Returns the message."""
    with pytest.raises(ApiException) as caught:
        write()
    assert caught.value.status == 403, caught.value.body
    assert f"locked by transaction '{TXN}'" in str(caught.value.body), caught.value.body
    return str(caught.value.body)


def managers(obj: dict[str, Any]) -> set[str]:
    return {entry["manager"] for entry in obj["metadata"].get("managedFields") or []}


def test_every_janus_step_passes_as_the_transactions_account_and_nobody_elses(janus_ns: dict[str, Any]) -> None:
    ns, admin, bob, runner, other = (janus_ns[k] for k in ("ns", "admin", "bob", RUNNER, "other"))
    cfg, gone, fresh = (Target("ConfigMap", name, ns) for name in ("cfg", "gone", "fresh"))
    for target in (cfg, gone):
        target.create(admin, target.manifest(data={"v": "0"}))
    leases = [acquire(admin, ns, "ConfigMap", target.name, TXN) for target in (cfg, gone, fresh)]
    # prepare: janus reads each target as the account
    prior_cfg, prior_gone = cfg.get(runner), gone.get(runner)
    # commit: Update, Patch, Create, Delete
    cfg.update(runner, cfg.manifest(data={"v": "1"}), prior_cfg["metadata"]["resourceVersion"])
    cfg.apply(runner, cfg.manifest(data={"p": "1"}), f"janus-{TXN}")
    fresh.apply(runner, fresh.manifest(data={"v": "1"}), f"janus-{TXN}")
    gone.delete(runner, prior_gone["metadata"]["resourceVersion"])
    assert managers(cfg.get(admin)) >= {"manager", f"janus-{TXN}"}  # the wire janus's steps leave
    # anyone else, each kind, whatever field manager they claim
    current = cfg.get(admin)
    message = refused(lambda: cfg.apply(bob, cfg.manifest(data={"p": "2"}), f"janus-{TXN}"))
    assert "transactions.tx.janus.io" in message
    refused(lambda: cfg.update(bob, cfg.manifest(data={"v": "2"}), current["metadata"]["resourceVersion"]))
    refused(lambda: client.CoreV1Api(bob).patch_namespaced_config_map(
        "cfg", ns, {"metadata": {"annotations": {"x": "1"}}}, field_manager=f"janus-{TXN}"))
    refused(lambda: fresh.delete(bob))
    refused(lambda: gone.create(bob, stored(prior_gone)))
    refused(lambda: cfg.apply(other, cfg.manifest(data={"p": "3"}), f"janus-{TXN}"))  # another account
    # rollback, in reverse order: re-create, delete the created, apply prior values, restore the update
    gone.create(runner, stored(prior_gone))
    fresh.delete(runner)
    cfg.apply(runner, cfg.manifest(data={"v": "1"}), f"janus-{TXN}")
    cfg.update(runner, stored(prior_cfg), cfg.get(runner)["metadata"]["resourceVersion"])
    assert cfg.get(admin)["data"] == {"v": "0"}
    for lease in leases:
        release(admin, ns, lease)
    cfg.apply(bob, cfg.manifest(data={"b": "1"}), "bob")  # unlocked: bob passes again


def test_only_the_account_the_transaction_names_passes(janus_ns: dict[str, Any]) -> None:
    ns, admin, runner, other = (janus_ns[k] for k in ("ns", "admin", RUNNER, "other"))
    cfg = Target("ConfigMap", "cfg", ns)
    cfg.create(admin, cfg.manifest(data={"v": "0"}))
    acquire(admin, ns, "ConfigMap", "cfg", TXN)
    set_service_account(admin, ns, TXN, "other")  # read fresh: effective on the next write
    refused(lambda: cfg.apply(runner, cfg.manifest(data={"v": "1"}), f"janus-{TXN}"))
    cfg.apply(other, cfg.manifest(data={"v": "1"}), f"janus-{TXN}")
    client.CustomObjectsApi(admin).delete_namespaced_custom_object("tx.janus.io", "v1alpha1", ns, "transactions",
                                                                   TXN, _preload_content=False)
    refused(lambda: cfg.apply(other, cfg.manifest(data={"v": "2"}), f"janus-{TXN}"))  # no Transaction: nobody


@pytest.fixture
def cluster_roles(janus_ns: dict[str, Any], janus_cached: RunningWebhook,
                  janus_webhook: RunningWebhook) -> Iterator[dict[str, Target]]:
    """Two ClusterRoles, one judged by each janus webhook; bob and the runner may write them."""
    ns, admin = janus_ns["ns"], janus_ns["admin"]
    roles = {key: Target("ClusterRole", f"{ns}-{key}") for key in ("consistent", "cached")}
    rbac = client.RbacAuthorizationV1Api(admin)
    for key, hook in (("consistent", janus_webhook), ("cached", janus_cached)):
        rbac.create_cluster_role(as_body({"metadata": {"name": roles[key].name,
                                                       "labels": {OBJECT_SELECT_LABEL: hook.key}}, "rules": []}),
                                 _preload_content=False)
    writer = f"{ns}-writer"
    rbac.create_cluster_role(as_body({"metadata": {"name": writer}, "rules": [{
        "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
        "resourceNames": [r.name for r in roles.values()], "verbs": ["get", "update", "patch", "delete"]}]}),
        _preload_content=False)
    rbac.create_cluster_role_binding(as_body({
        "metadata": {"name": writer},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": writer},
        "subjects": [{"kind": "ServiceAccount", "name": RUNNER, "namespace": ns},
                     {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}]}),
        _preload_content=False)
    yield roles
    for name in (*(r.name for r in roles.values()), writer):
        rbac.delete_cluster_role(name, _preload_content=False)
    rbac.delete_cluster_role_binding(writer, _preload_content=False)


def test_a_cluster_scoped_object_janus_locks_refuses_others_and_status_shows_janus(
        janus_ns: dict[str, Any], cluster_roles: dict[str, Target], cluster: LocalCluster) -> None:
    ns, admin, bob, runner = (janus_ns[k] for k in ("ns", "admin", "bob", RUNNER))
    role = cluster_roles["consistent"]
    lease = acquire(admin, ns, "ClusterRole", role.name, TXN)  # in the Transaction's namespace
    assert lease == f"janus-lock-{ns}-clusterrole-{role.name}"
    labelled = role.manifest(metadata={"name": role.name, "labels": {OBJECT_SELECT_LABEL: "janus", "x": "1"}})
    refused(lambda: role.update(bob, labelled, role.get(admin)["metadata"]["resourceVersion"]))
    refused(lambda: role.apply(bob, role.manifest(metadata={"name": role.name, "annotations": {"x": "1"}}),
                               f"janus-{TXN}"))
    role.update(runner, labelled, role.get(runner)["metadata"]["resourceVersion"])
    role.apply(runner, role.manifest(metadata={"name": role.name, "annotations": {"x": "1"}}), f"janus-{TXN}")
    status = subprocess.run(["kubectl", "lock", "status", f"clusterrole/{role.name}", "--profile", "janus",
                             "-o", "json"], capture_output=True, text=True, timeout=60,
                            env=plugin_env(cluster, PYTHONPATH=str(REPO_ROOT)))
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert (shown["txn"], shown["locked"], shown["lease"]) == (TXN, True, {"namespace": ns, "name": lease})
    release(admin, ns, lease)
    role.update(bob, labelled, role.get(admin)["metadata"]["resourceVersion"])


def test_the_cached_webhook_finds_janus_cluster_scoped_leases(janus_ns: dict[str, Any],
                                                              cluster_roles: dict[str, Target]) -> None:
    ns, admin, bob, runner = (janus_ns[k] for k in ("ns", "admin", "bob", RUNNER))
    role = cluster_roles["cached"]
    note = role.manifest(metadata={"name": role.name, "annotations": {"by": "bob"}})
    lease = acquire(admin, ns, "ClusterRole", role.name, TXN)

    def bob_refused() -> bool:
        try:
            role.apply(bob, note, "bob")
        except ApiException as exc:
            return exc.status == 403
        return False

    wait_for(bob_refused, timeout=15)  # the watch brings the Lease within the cache's staleness bound
    role.apply(runner, role.manifest(metadata={"name": role.name, "annotations": {"by": "janus"}}), f"janus-{TXN}")
    release(admin, ns, lease)
    wait_for(lambda: not bob_refused(), timeout=15)
