"""Fenced locks (docs/INVARIANTS.md "fence"), against the real API server and the default webhook.

The webhook here runs with default settings (cached Lease lookups) and the
registration the chart renders. A second user's write is fired from another
process the instant ``acquire`` (or ``hold``) returns; it must never get
through, and must get through as soon as ``release`` returns. Writes of
unmarked objects never reach the webhook, so they keep working while it is
down.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from kubernetes import client

from lockcore.holding import hold
from lockcore.kube import LOCKED_LABEL
from lockcore.manager import LeaseManager
from lockcore.naming import ResourceKey
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tests.support.webhooks import WebhookFactory, cluster_scoped_locking
from tests.support.writer import Writer, second_user
from tools.localcluster import LocalCluster
from tools.localwebhook import (
    RunningWebhook,
    as_body,
    grant_edit,
    guard,
    register_webhook,
)

pytestmark = pytest.mark.integration
ROUNDS = 1000
TXN_ANNOTATION = "leasegate.io/transaction"


@pytest.fixture
def bob(cluster: LocalCluster, locked_ns: str) -> Iterator[Writer]:
    with second_user(cluster.kubeconfig_for("bob"), locked_ns) as writer:
        yield writer


def race(rounds: int, locked: Callable[[int], AbstractContextManager[Any]], write: Callable[[], list[int]],
         ) -> tuple[int, int]:
    """``rounds`` x (hold the lock: the second user's writes; let go: the writes again).

    Returns (writes that slipped through the lock, writes refused once it was let go).
    """
    slipped = refused_after_release = 0
    for i in range(rounds):
        with locked(i):
            slipped += sum(status != 403 for status in write())
        refused_after_release += sum(status != 200 for status in write())
    return slipped, refused_after_release


@contextmanager
def acquired(manager: LeaseManager, key: ResourceKey, txn: str) -> Iterator[None]:
    """acquire ... release, the calls under test (not hold(), which has its own test)."""
    ref = manager.acquire(key, txn, 60)
    yield
    manager.release(ref, txn)


def cm(namespace: str, name: str) -> ResourceKey:
    return ResourceKey("", "ConfigMap", namespace, name)


def make_cms(api: client.ApiClient, namespace: str, *names: str) -> None:
    core = client.CoreV1Api(api)
    for name in names:
        core.create_namespaced_config_map(namespace, as_body({"metadata": {"name": name}}), _preload_content=False)


def test_a_write_fired_the_instant_acquire_returns_never_gets_through(
        locked_ns: str, api_client: ApiClientFactory, bob: Writer) -> None:
    make_cms(api_client("admin"), locked_ns, "cfg")
    alice = LeaseManager(api_client("alice"))
    outcome = race(ROUNDS, lambda i: acquired(alice, cm(locked_ns, "cfg"), f"t{i}"), lambda: [bob.write("patch", "cfg")])
    assert outcome == (0, 0)


def test_hold_fences_every_key_from_the_first_instant(
        locked_ns: str, api_client: ApiClientFactory, bob: Writer) -> None:
    make_cms(api_client("admin"), locked_ns, "a", "b")
    alice = LeaseManager(api_client("alice"))
    keys = [cm(locked_ns, "a"), cm(locked_ns, "b")]
    # hold() acquires through the same fence as acquire (1,000 rounds above): 200 rounds check its wrapping.
    outcome = race(ROUNDS // 5, lambda i: hold(alice, keys, f"t{i}", ttl=60),
                   lambda: [bob.write("patch", name) for name in ("a", "b")])
    assert outcome == (0, 0)


def test_a_lock_on_an_object_that_does_not_exist_yet_holds_for_its_create(
        locked_ns: str, api_client: ApiClientFactory, bob: Writer) -> None:
    alice = LeaseManager(api_client("alice"))

    def create() -> list[int]:
        status = bob.write("create", "new")
        return [status, bob.write("delete", "new")] if status == 200 else [status]

    outcome = race(ROUNDS, lambda i: acquired(alice, cm(locked_ns, "new"), f"t{i}"), create)
    assert outcome == (0, 0)


@pytest.fixture
def cluster_scoped(api_client: ApiClientFactory, shipped_webhook: RunningWebhook) -> Iterator[str]:
    with cluster_scoped_locking(api_client("admin"), shipped_webhook, "fence-cluster-scoped") as label:
        yield label


def test_a_reserved_cluster_scoped_name_holds_for_its_create(
        locked_ns: str, cluster_scoped: str, api_client: ApiClientFactory, bob: Writer) -> None:
    """The same race for names with no namespace (their Leases live in the lock namespace): one drill,
    ClusterRoles and Namespaces in turn, 500 rounds of each."""
    alice = LeaseManager(api_client("alice"))
    prefix = f"fence-{locked_ns[-6:]}"

    def kind(i: int) -> str:
        return "ClusterRole" if i % 2 == 0 else "Namespace"

    def name(i: int) -> str:  # a Namespace deleted stays Terminating here (no namespace controller): one per round
        return f"{prefix}-cr" if kind(i) == "ClusterRole" else f"{prefix}-ns-{i}"

    def create(i: int) -> list[int]:
        status = bob.write(f"create-{kind(i).lower()}", name(i), cluster_scoped)
        if status == 200 and kind(i) == "ClusterRole":
            return [status, bob.write("delete-clusterrole", name(i))]
        return [status]

    current = [0]

    def locked(i: int) -> AbstractContextManager[Any]:
        current[0] = i
        group = "rbac.authorization.k8s.io" if kind(i) == "ClusterRole" else ""
        return acquired(alice, ResourceKey(group, kind(i), "", name(i)), f"t{i}")

    outcome = race(ROUNDS, locked, lambda: create(current[0]))
    assert outcome == (0, 0)


def test_unmarked_objects_never_reach_the_webhook_and_survive_its_outage(
        namespace: str, api_client: ApiClientFactory, webhook_factory: WebhookFactory,
        cluster: LocalCluster) -> None:
    admin = api_client("admin")
    outage = webhook_factory("outage")
    register_webhook(admin, outage, failure_policy="Fail")
    grant_edit(admin, namespace, locks=True)
    guard(admin, namespace, outage.key)
    names = [f"free-{i}" for i in range(ROUNDS)]
    make_cms(admin, namespace, "locked", *names)
    ref = LeaseManager(api_client("alice")).acquire(cm(namespace, "locked"), "t1", 600)
    with second_user(cluster.kubeconfig_for("bob"), namespace) as bob:
        calls = outage.metric("leasegate_admission_decisions_total")
        assert all(bob.write("patch", name) == 200 for name in names)
        assert outage.metric("leasegate_admission_decisions_total") == calls, "an unmarked write reached the webhook"
        assert bob.write("patch", "locked") == 403
        outage.stop()
        # failurePolicy Fail refuses what needs the webhook (the marked object), nothing else.
        assert all(bob.write("patch", name) == 200 for name in names[:100])
        assert bob.write("patch", "locked") == 500
    assert ref.name == "lg.configmap.locked"


@pytest.mark.parametrize("how", ["other user", "holder outside release", "kubectl replace", "server-side apply",
                                 "json patch"])
def test_the_marker_cannot_be_removed_while_the_lock_lives(
        how: str, locked_ns: str, api_client: ApiClientFactory, kubectl: KubectlRunner) -> None:
    make_cms(api_client("admin"), locked_ns, "cfg")
    LeaseManager(api_client("alice")).acquire(cm(locked_ns, "cfg"), "t1", 600)
    user = "bob" if how == "other user" else "alice"
    proof = [f"{TXN_ANNOTATION}=t1"] if how != "other user" else []
    stripped = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "cfg", "namespace": locked_ns, "annotations": {TXN_ANNOTATION: "t1"}}, "data": {"k": "v"}}
    if how in ("other user", "holder outside release"):
        out = kubectl("label", "configmap", "cfg", "-n", locked_ns, f"{LOCKED_LABEL}-", user=user, check=False)
        if proof:
            kubectl("annotate", "configmap", "cfg", "-n", locked_ns, *proof, user=user)
            out = kubectl("label", "configmap", "cfg", "-n", locked_ns, f"{LOCKED_LABEL}-", user=user, check=False)
    elif how == "kubectl replace":
        out = kubectl("replace", "-f", "-", input=json.dumps(stripped), user=user, check=False)
    elif how == "server-side apply":
        out = kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(stripped),
                      user=user, check=False)
    else:
        patch = json.dumps([{"op": "remove", "path": "/metadata/labels/leasegate.io~1locked"},
                            {"op": "add", "path": "/metadata/annotations", "value": {TXN_ANNOTATION: "t1"}}])
        out = kubectl("patch", "configmap", "cfg", "-n", locked_ns, "--type=json", "-p", patch, user=user,
                      check=False)
    if how == "server-side apply":
        # Apply drops only the fields its manager owns: the stamp's marker is not one of them.
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode != 0, out.stdout
        assert "locked by transaction 't1'" in out.stderr, out.stderr
    labels = client.CoreV1Api(api_client("admin")).read_namespaced_config_map("cfg", locked_ns).metadata.labels
    assert labels[LOCKED_LABEL] == "t1"


def test_release_removes_the_marker_and_a_stale_one_is_harmless(
        locked_ns: str, api_client: ApiClientFactory, kubectl: KubectlRunner) -> None:
    admin = api_client("admin")
    make_cms(admin, locked_ns, "cfg")
    alice = LeaseManager(api_client("alice"))
    ref = alice.acquire(cm(locked_ns, "cfg"), "t1", 600)
    listed = kubectl("get", "cm", "-n", locked_ns, "-l", LOCKED_LABEL, "-o", "name").stdout.split()
    assert listed == ["configmap/cfg"]
    alice.release(ref, "t1")
    assert kubectl("get", "cm", "-n", locked_ns, "-l", LOCKED_LABEL, "-o", "name").stdout.split() == []
    # A marker with no Lease behind it (a crashed holder) locks nothing and anyone may clean it up.
    kubectl("label", "configmap", "cfg", "-n", locked_ns, f"{LOCKED_LABEL}=t9", user="bob")
    kubectl("annotate", "configmap", "cfg", "-n", locked_ns, "note=x", user="bob")
    kubectl("label", "configmap", "cfg", "-n", locked_ns, f"{LOCKED_LABEL}-", user="bob")


def test_acquire_gives_the_lease_back_when_the_object_cannot_be_stamped(
        namespace: str, api_client: ApiClientFactory) -> None:
    from lockcore.fence import FenceError

    admin = api_client("admin")
    make_cms(admin, namespace, "cfg")
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(namespace, as_body({"metadata": {"name": "leases-only"}, "rules": [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]}), _preload_content=False)
    rbac.create_namespaced_role_binding(namespace, as_body({
        "metadata": {"name": "leases-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leases-only"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]}),
        _preload_content=False)
    bob = LeaseManager(api_client("bob"))
    with pytest.raises(FenceError) as refused:
        bob.acquire(cm(namespace, "cfg"), "t1", 600)
    assert refused.value.status == 403 and "configmap/cfg" in str(refused.value)
    assert bob.get_lock(bob.ref_for(cm(namespace, "cfg"))) is None, "nothing left half-locked"
    # The advisory opt-out takes the Lease without touching the object.
    ref = bob.acquire(cm(namespace, "cfg"), "t1", 600, fence=False)
    assert bob.get_lock(ref) is not None
    labels = client.CoreV1Api(admin).read_namespaced_config_map("cfg", namespace).metadata.labels or {}
    assert LOCKED_LABEL not in labels
