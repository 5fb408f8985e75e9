"""Fixtures that run the real webhook against the session's kube-apiserver (a plugin).

The helpers live in tools/localwebhook.py (shared with the benchmark and the
demo); tests import them from there:

* ``webhook_factory(key, **settings)`` starts (once per key) a webhook process;
* ``deny_webhook`` is the deterministic webhook under test (consistent
  lookups), registered; ``guarded`` is a fresh namespace judged by it, where
  alice and bob may edit;
* ``shipped_webhook`` is the webhook as shipped (default settings: cached
  lookups), registered; ``locked_ns`` is a fresh namespace judged by it where
  alice and bob may edit and take locks;
* ``report_crds``: the chart's OpenReports CRDs installed (the ledger's reports);
* ``cluster_scoped_locking(admin, running, name)``: alice may lock cluster-scoped
  objects judged by ``running``, bob create ClusterRoles and Namespaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from lockcore.settings import LockSettings
from tests.support.cluster import ApiClientFactory
from tools.localcluster import LocalCluster
from tools.localwebhook import (
    OBJECT_SELECT_LABEL,
    SELECT_LABEL,
    RunningWebhook,
    as_body,
    ensure_namespace,
    grant_edit,
    guard,
    install_report_crds,
    register_webhook,
    start_webhook,
    wait_judged,
)

WebhookFactory = Callable[..., RunningWebhook]


@pytest.fixture(scope="session")
def webhook_factory(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookFactory]:
    """``webhook_factory("deny-consistent", lease_lookup="consistent", user="admin")``: one process per key."""
    workdir = tmp_path_factory.mktemp("webhooks")
    started: dict[str, RunningWebhook] = {}

    def factory(key: str, *, user: str = "admin", **settings: Any) -> RunningWebhook:
        if key not in started or not started[key].alive():
            kubeconfig = Path(settings.pop("kubeconfig", cluster.kubeconfig_for(user)))
            started[key] = start_webhook(workdir, kubeconfig, key, **settings)
        return started[key]

    yield factory
    for running in started.values():
        running.stop()


@pytest.fixture(scope="session")
def deny_webhook(webhook_factory: WebhookFactory, api_client: ApiClientFactory) -> RunningWebhook:
    """The default webhook under test: deny mode, consistent lookups (deterministic), registered."""
    running = webhook_factory("deny", lease_lookup="consistent", mode="deny")
    register_webhook(api_client("admin"), running)
    return running


@pytest.fixture
def guarded(namespace: str, api_client: ApiClientFactory, deny_webhook: RunningWebhook) -> str:
    """A fresh namespace judged by ``deny_webhook``, where alice and bob may edit."""
    admin = api_client("admin")
    grant_edit(admin, namespace)
    guard(admin, namespace, deny_webhook.key)
    wait_judged(admin, deny_webhook, namespace)  # the API server's copy of the namespace has the label
    return namespace


@pytest.fixture(scope="session")
def shipped_webhook(webhook_factory: WebhookFactory, api_client: ApiClientFactory) -> RunningWebhook:
    """The webhook as shipped: default settings (cached lookups), the chart's registration."""
    running = webhook_factory("shipped")
    register_webhook(api_client("admin"), running)
    return running


@pytest.fixture
def locked_ns(namespace: str, api_client: ApiClientFactory, shipped_webhook: RunningWebhook) -> str:
    """A fresh namespace judged by ``shipped_webhook``, where alice and bob may edit and lock."""
    admin = api_client("admin")
    grant_edit(admin, namespace, locks=True)
    guard(admin, namespace, shipped_webhook.key)
    wait_judged(admin, shipped_webhook, namespace)
    return namespace


@pytest.fixture(scope="session")
def report_crds(api_client: ApiClientFactory) -> None:
    """The chart's vendored OpenReports CRDs, installed into the session's API server (the ledger writes there)."""
    install_report_crds(api_client("admin"))


@contextmanager
def cluster_scoped_locking(admin: client.ApiClient, running: RunningWebhook, name: str) -> Iterator[str]:
    """alice may lock cluster-scoped objects, bob create ClusterRoles and Namespaces, for the block.

    The lock namespace (where cluster-scoped objects' Leases live) is judged by
    ``running``'s policies, so acquire waits for them. Yields the label bob's
    cluster-scoped objects must carry to be judged by ``running``.
    """
    lock_ns = LockSettings().lock_namespace
    ensure_namespace(admin, lock_ns)
    guard(admin, lock_ns, running.key)
    wait_judged(admin, running, lock_ns)
    rbac = client.RbacAuthorizationV1Api(admin)
    rules = [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["*"]},
             {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["*"]},
             {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]
    rbac.create_cluster_role(as_body({"metadata": {"name": name}, "rules": rules}), _preload_content=False)
    rbac.create_cluster_role_binding(as_body({"metadata": {"name": name}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}]}), _preload_content=False)
    try:
        yield f"{OBJECT_SELECT_LABEL}={running.key}"
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
        client.CoreV1Api(admin).patch_namespace(lock_ns, {"metadata": {"labels": {SELECT_LABEL: None}}})
