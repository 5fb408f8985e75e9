"""The outage radius: with the webhook down, only writes of locked objects (and creates of
reserved names, and other identities' changes of live lock Leases) are refused.

Against the real kube-apiserver with the shipped registration and reservation policies
(``register_webhook``: webhook.registration + webhook.policy, failurePolicy Fail), the
webhook process is stopped mid-test: an outage as the API server sees it (connection
refused). Nothing here fakes the API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.holding import hold
from lockcore.kube import LOCKED_LABEL, PRINCIPAL_ANNOTATION
from lockcore.manager import LeaseManager
from lockcore.members import MEMBERS_ANNOTATION
from lockcore.naming import ResourceKey
from lockcore.settings import LockSettings
from tests.support.calls import status_of
from tests.support.cluster import ApiClientFactory
from tests.support.webhooks import WebhookFactory, cluster_scoped_locking
from tools.localwebhook import (
    OBJECT_SELECT_LABEL,
    RunningWebhook,
    as_body,
    grant_edit,
    guard,
    register_webhook,
    wait_judged,
)

pytestmark = pytest.mark.integration
TTL = 3
NAMESPACES = 10


@pytest.fixture
def drill(webhook_factory: WebhookFactory, api_client: ApiClientFactory) -> RunningWebhook:
    running = webhook_factory("outage-drill", lease_lookup="consistent")
    register_webhook(api_client("admin"), running)
    return running


@pytest.fixture
def namespaces(namespace: str, api_client: ApiClientFactory, drill: RunningWebhook) -> Iterator[list[str]]:
    """Ten namespaces judged by the drill webhook, where alice and bob may edit and lock."""
    admin = api_client("admin")
    core = client.CoreV1Api(admin)
    names = [namespace] + [f"{namespace[:50]}-{i}" for i in range(1, NAMESPACES)]
    for name in names[1:]:
        core.create_namespace(as_body({"metadata": {"name": name}}), _preload_content=False)
    for name in names:
        grant_edit(admin, name, locks=True)
        guard(admin, name, drill.key)
    wait_judged(admin, drill, names[0])
    yield names
    for name in names[1:]:
        core.delete_namespace(name, _preload_content=False)


@pytest.fixture
def cluster_locks(api_client: ApiClientFactory, drill: RunningWebhook) -> Iterator[str]:
    with cluster_scoped_locking(api_client("admin"), drill, f"drill-clusterroles-{drill.key}") as label:
        yield label


def cluster_role(name: str, key: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": {OBJECT_SELECT_LABEL: key}}, "rules": []}


def bound_lease(name: str, principal: str, members: str) -> dict[str, object]:
    """A lock Lease recording ``principal`` and the raw ``members`` annotation (what a hand-made lock sends)."""
    return {"metadata": {"name": name, "labels": {LockSettings().lock_profile.txn_label: "t9"},
                         "annotations": {PRINCIPAL_ANNOTATION: principal, MEMBERS_ANNOTATION: members}},
            "spec": {"holderIdentity": "t9", "leaseDurationSeconds": 60}}


def test_creates_never_reach_the_webhook_and_an_outage_refuses_only_locked_objects(
        namespaces: list[str], cluster_locks: str, drill: RunningWebhook, api_client: ApiClientFactory,
        webhook_factory: WebhookFactory) -> None:
    admin, alice_api, bob_api = api_client("admin"), api_client("alice"), api_client("bob")
    core, bob, bob_rbac = client.CoreV1Api(admin), client.CoreV1Api(bob_api), client.RbacAuthorizationV1Api(bob_api)
    home = namespaces[0]
    for name in ("locked", "free"):
        core.create_namespaced_config_map(home, as_body({"metadata": {"name": name}}), _preload_content=False)
    alice = LeaseManager(alice_api)
    locked, reserved = ResourceKey("", "ConfigMap", home, "locked"), ResourceKey("", "ConfigMap", home, "reserved")
    role = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", f"reserved-{drill.key}")

    calls = drill.metric("leasegate_admission_decisions_total")
    created = [status_of(bob.create_namespaced_config_map, ns, as_body({"metadata": {"name": f"cm-{i}"}}))
               for i in range(100) for ns in namespaces]
    created += [status_of(bob_rbac.create_cluster_role, as_body(cluster_role(f"cr-{drill.key}-{i}", drill.key)))
                for i in range(100)]
    assert created == [201] * 1100
    assert drill.metric("leasegate_admission_decisions_total") == calls, "a create reached the webhook"

    with hold(alice, [locked, reserved, role], "t1", ttl=TTL) as held:
        drill.stop()  # the outage: the API server's calls are refused from here on
        assert not drill.alive()
        started = time.monotonic()
        # Everything but the locked objects goes on: creates in every namespace, cluster-scoped creates.
        during = [status_of(bob.create_namespaced_config_map, ns, as_body({"metadata": {"name": f"out-{i}"}}))
                  for i in range(10) for ns in namespaces]
        during += [status_of(bob_rbac.create_cluster_role, as_body(cluster_role(f"out-{drill.key}-{i}", drill.key)))
                   for i in range(10)]
        assert during == [201] * 110
        # A free object is acquired (Lease and marker) and released, without the webhook.
        free = ResourceKey("", "ConfigMap", home, "free")
        ref = alice.acquire(free, "t2", 60)
        assert core.read_namespaced_config_map("free", home).metadata.labels[LOCKED_LABEL] == "t2"
        alice.release(ref, "t2")
        # So is an identity-bound one (its members read in-process), and bob is no member of it.
        ref = alice.acquire(free, "t2m", 60, members=["user:carol"])
        assert status_of(bob.patch_namespaced_config_map, "free", home, {"data": {"x": "1"}}) >= 400
        alice.release(ref, "t2m")
        # A lock recording members without its creator still needs the webhook: refused while it is down.
        assert status_of(client.CoordinationV1Api(bob_api).create_namespaced_lease, home, as_body(
            bound_lease("lg.configmap.bobs", "bob", '{"groups":[],"users":["carol"],"version":1}'))) >= 400
        assert status_of(client.CoordinationV1Api(bob_api).create_namespaced_lease, home, as_body(
            bound_lease("lg.configmap.typo", "bob", '{"users":["bob"]}'))) >= 400
        # Everyone else's writes of what the locks hold are refused.
        assert status_of(bob.patch_namespaced_config_map, "locked", home, {"data": {"x": "1"}}) >= 400
        assert status_of(bob.delete_namespaced_config_map, "locked", home) >= 400
        assert status_of(bob.create_namespaced_config_map, home, as_body({"metadata": {"name": "reserved"}})) == 403
        assert status_of(bob_rbac.create_cluster_role, as_body(cluster_role(role.name, drill.key))) == 403
        lease = alice.ref_for(locked)
        bob_leases = client.CoordinationV1Api(bob_api)
        assert status_of(bob_leases.patch_namespaced_lease, lease.name, lease.namespace,
                         {"spec": {"holderIdentity": "bobs"}}) >= 400
        assert status_of(bob_leases.delete_namespaced_lease, lease.name, lease.namespace) >= 400
        # The holder keeps its locks through three TTLs of outage (hold() renews them).
        time.sleep(max(0.0, 3 * TTL + 0.5 - (time.monotonic() - started)))
        held.check()
    # Released during the outage: the objects are free again, at once.
    assert status_of(bob.patch_namespaced_config_map, "locked", home, {"data": {"x": "2"}}) == 200
    assert status_of(bob.create_namespaced_config_map, home, as_body({"metadata": {"name": "reserved"}})) == 201
    assert status_of(bob_rbac.create_cluster_role, as_body(cluster_role(role.name, drill.key))) == 201

    back = webhook_factory(drill.key, lease_lookup="consistent")  # the pods return
    register_webhook(admin, back)
    ref = alice.acquire(locked, "t3", 60)
    assert status_of(bob.patch_namespaced_config_map, "locked", home, {"data": {"x": "3"}}) == 403
    alice.release(ref, "t3")


def test_a_lock_recorded_for_someone_else_is_refused(
        namespace: str, api_client: ApiClientFactory, drill: RunningWebhook) -> None:
    admin = api_client("admin")
    grant_edit(admin, namespace, locks=True)
    guard(admin, namespace, drill.key)
    wait_judged(admin, drill, namespace)
    bob = LeaseManager(api_client("bob"), principal="alice")  # bob claims to be alice
    with pytest.raises(Exception, match="would record 'alice' as the principal"):
        bob.acquire(ResourceKey("", "ConfigMap", namespace, "cfg"), "t1", 60)
    leases = client.CoordinationV1Api(admin).list_namespaced_lease(namespace).items
    assert [lease.metadata.name for lease in leases] == []


def test_a_custom_resource_is_locked_with_the_default_registration(
        namespace: str, api_client: ApiClientFactory, drill: RunningWebhook) -> None:
    admin = api_client("admin")
    group, plural = f"{drill.key}.example.leasegate.io", "widgets"
    client.ApiextensionsV1Api(admin).create_custom_resource_definition(as_body({
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}), _preload_content=False)
    grant_edit(admin, namespace, locks=True)
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(namespace, as_body({
        "metadata": {"name": "widgets"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                     "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}]}),
        _preload_content=False)
    guard(admin, namespace, drill.key)
    wait_judged(admin, drill, namespace)
    objects = client.CustomObjectsApi(admin)
    deadline = time.monotonic() + 30
    while True:  # the CRD is served once established
        try:
            objects.create_namespaced_custom_object(group, "v1", namespace, plural,
                                                    {"apiVersion": f"{group}/v1", "kind": "Widget",
                                                     "metadata": {"name": "w1"}, "size": 1})
            break
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    ref = LeaseManager(api_client("alice")).acquire(ResourceKey(group, "Widget", namespace, "w1"), "t1", 60)
    bob = client.CustomObjectsApi(api_client("bob"))
    with pytest.raises(ApiException) as refused:
        bob.patch_namespaced_custom_object(group, "v1", namespace, plural, "w1", {"size": 2})
    assert refused.value.status == 403 and "locked by transaction 't1'" in str(refused.value.body)
    assert ref.namespace == namespace
    client.ApiextensionsV1Api(admin).delete_custom_resource_definition(f"{plural}.{group}")
