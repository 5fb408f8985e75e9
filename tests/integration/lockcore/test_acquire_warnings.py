"""``acquire`` warns about locks that can still be bypassed: an unlocked owner, a kind no webhook judges.

Against the real API server: real ownerReferences, a real (never called)
ValidatingWebhookConfiguration labelled as leasegate's, RBAC that hides it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.cli import lockcore, plugin_env
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tests.support.locking import grant_leases
from tools.localcluster import LocalCluster

pytestmark = pytest.mark.integration
SELECT = "leasegate-cli-test"


def configmap(api: client.ApiClient, namespace: str, name: str, *owners: dict[str, Any]) -> dict[str, Any]:
    """Create a ConfigMap owned by ``owners`` (other ConfigMaps' metadata); returns its metadata."""
    refs = [{"apiVersion": "v1", "kind": "ConfigMap", "name": o["name"], "uid": o["uid"]} for o in owners]
    body = {"metadata": {"name": name, "ownerReferences": refs}}
    client.CoreV1Api(api).create_namespaced_config_map(namespace, body, _preload_content=False)
    made = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    return {"name": made.metadata.name, "uid": made.metadata.uid}


def owner_warning(namespace: str, child: str, owner: str, prog: str = "lockcore", txn: str = "t1",
                  through: str = "", flags: str = "") -> str:
    via = f" (through configmap/{through} -n {namespace})" if through else ""
    return (f"Warning: configmap/{child} -n {namespace} is owned by configmap/{owner} -n {namespace}{via}, which "
            f"is not locked: deleting it makes the garbage collector delete configmap/{child} -n {namespace} "
            f"despite its lock; lock it too: {prog} acquire configmap/{owner} -n {namespace} {flags}--txn {txn} "
            "--ttl 600s")


def acquire(cluster: LocalCluster, namespace: str, *targets: str, txn: str = "t1", user: str = "admin",
            flags: tuple[str, ...] = ()) -> str:
    """``lockcore acquire`` that must succeed; returns its stderr (the warnings)."""
    done = lockcore(cluster, "acquire", *targets, "-n", namespace, "--txn", txn, "--ttl", "10m", *flags, user=user)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_unlocked_owner_is_named_with_the_command_that_locks_it(
        cluster: LocalCluster, namespace: str, api_client: ApiClientFactory, kubectl: KubectlRunner) -> None:
    admin = api_client("admin")
    parent = configmap(admin, namespace, "parent")
    configmap(admin, namespace, "child", parent)

    assert owner_warning(namespace, "child", "parent") in acquire(cluster, namespace, "cm/child")
    assert lockcore(cluster, "release", "cm/child", "-n", namespace, "--txn", "t1").returncode == 0
    # kubectl lock names itself in the suggestion, which keeps the cluster and lock flags given.
    plugin = kubectl("lock", "acquire", "cm/child", "-n", namespace, "--txn", "t1", "--ttl", "599.5",
                     "--context", "admin", "--lock-namespace", namespace, env=plugin_env(cluster))
    flags = f"--context=admin --lock-namespace={namespace} "
    assert owner_warning(namespace, "child", "parent", prog="kubectl lock", flags=flags) in plugin.stderr
    assert lockcore(cluster, "release", "cm/child", "-n", namespace, "--txn", "t1").returncode == 0

    # Locked together, or the owner already locked by any transaction: nothing to warn about.
    assert "is owned by" not in acquire(cluster, namespace, "cm/child", "cm/parent")
    assert lockcore(cluster, "release", "cm/child", "-n", namespace, "--txn", "t1").returncode == 0
    assert "is owned by" not in acquire(cluster, namespace, "cm/child", txn="t2")


def test_a_dependent_is_safe_while_any_owner_is_locked(
        cluster: LocalCluster, namespace: str, api_client: ApiClientFactory) -> None:
    # The garbage collector deletes a dependent only once all of its owners are gone.
    admin = api_client("admin")
    first, second = configmap(admin, namespace, "first"), configmap(admin, namespace, "second")
    configmap(admin, namespace, "both", first, second)
    warned = acquire(cluster, namespace, "cm/both")
    assert owner_warning(namespace, "both", "first") in warned and owner_warning(namespace, "both", "second") in warned
    assert lockcore(cluster, "release", "cm/both", "-n", namespace, "--txn", "t1").returncode == 0
    assert "is owned by" not in acquire(cluster, namespace, "cm/both", "cm/second")


def test_a_locked_owner_the_collector_can_delete_is_no_shield(
        cluster: LocalCluster, namespace: str, api_client: ApiClientFactory) -> None:
    # top <- mid <- child: deleting top collects mid, then child, whatever locks mid and child hold.
    admin = api_client("admin")
    top = configmap(admin, namespace, "top")
    configmap(admin, namespace, "child", configmap(admin, namespace, "mid", top))
    warned = acquire(cluster, namespace, "cm/child", "cm/mid")
    assert owner_warning(namespace, "child", "top", through="mid") in warned
    assert owner_warning(namespace, "mid", "top") in warned
    assert lockcore(cluster, "release", "cm/child", "cm/mid", "-n", namespace, "--txn", "t1").returncode == 0
    assert "is owned by" not in acquire(cluster, namespace, "cm/child", "cm/mid", "cm/top")


@pytest.fixture
def webhook_configuration(api_client: ApiClientFactory, namespace: str) -> Iterator[str]:
    """A leasegate-labelled configuration judging ConfigMap updates in ``namespace`` only.

    Its URL is a closed port and its failure policy Ignore: the API server's
    calls fail at once and change nothing; only its rules matter here.
    """
    admin = api_client("admin")
    name = f"leasegate-cli-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(admin).patch_namespace(namespace, {"metadata": {"labels": {SELECT: namespace}}})
    admission = client.AdmissionregistrationV1Api(admin)
    admission.create_validating_webhook_configuration({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "leasegate"}},
        "webhooks": [{
            "name": "locks.leasegate.io", "clientConfig": {"url": "https://127.0.0.1:1/validate"},
            "rules": [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["configmaps"], "scope": "*"}],
            "namespaceSelector": {"matchLabels": {SELECT: namespace}},
            "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 1,
        }],
    }, _preload_content=False)
    yield name
    admission.delete_validating_webhook_configuration(name)


def test_a_kind_no_webhook_judges_is_not_enforced(
        cluster: LocalCluster, namespace: str, webhook_configuration: str, api_client: ApiClientFactory) -> None:
    only = ("--webhook-configuration", webhook_configuration)
    assert "Warning" not in acquire(cluster, namespace, "cm/judged", flags=only)
    assert acquire(cluster, namespace, "secret/unjudged", flags=only) == (
        f"Warning: no leasegate webhook judges updates of secret/unjudged -n {namespace} "
        f"({webhook_configuration}): its lock is not enforced\n")
    # By default, every configuration labelled app.kubernetes.io/managed-by=leasegate counts.
    assert "not enforced" not in acquire(cluster, namespace, "cm/by-label")
    by_label = acquire(cluster, namespace, "secret/by-label")
    assert f"updates of secret/by-label -n {namespace} (" in by_label and webhook_configuration in by_label

    # Its namespaceSelector is read too: out of the selected namespaces, ConfigMaps are not judged either.
    client.CoreV1Api(api_client("admin")).patch_namespace(namespace, {"metadata": {"labels": {SELECT: None}}})
    assert acquire(cluster, namespace, "cm/outside", flags=only) == (
        f"Warning: no leasegate webhook judges updates of configmap/outside -n {namespace} "
        f"({webhook_configuration}): its lock is not enforced\n")


def test_a_named_configuration_that_is_not_installed(cluster: LocalCluster, namespace: str) -> None:
    assert acquire(cluster, namespace, "cm/x", flags=("--webhook-configuration", "no-such-vwc")) == (
        "Warning: no leasegate ValidatingWebhookConfiguration (no-such-vwc) is installed: "
        "locks are advisory only\n")


def test_a_user_who_cannot_read_the_registration_gets_no_guess(
        cluster: LocalCluster, namespace: str, api_client: ApiClientFactory, webhook_configuration: str) -> None:
    # Leases and the Secret itself, nothing cluster-wide: the webhook configurations are out of sight.
    admin = api_client("admin")
    grant_leases(api_client, namespace, "bob")
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "secrets-bob"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update", "patch"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "secrets-bob"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secrets-bob"},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}]})
    client.CoreV1Api(admin).create_namespaced_secret(namespace, {"metadata": {"name": "x"}})
    assert acquire(cluster, namespace, "secret/x", user="bob") == ""
