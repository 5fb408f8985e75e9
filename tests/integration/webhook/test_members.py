"""Identity-bound locks (issue 15), on the real API server and the shipped webhook.

A lock acquired with members admits writes only from identities the API
server authenticated as members: a user, a member group's user, a service
account with its own token. bob has full RBAC on the objects and Leases here
(group developers), so every refusal below is the webhook's, not RBAC's.
Other users are the admin impersonating them (``Impersonate-User`` /
``Impersonate-Group``): the API server authenticates the admin and passes the
impersonated user and groups to admission, as for any client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lockcore.errors import LeaseOpError
from lockcore.manager import LeaseManager
from lockcore.members import MEMBERS_ANNOTATION, Members, MembersError
from lockcore.naming import LeaseRef, ResourceKey
from tests.support.cli import lockcore, plugin_env
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tests.support.webhooks import WebhookFactory
from tests.support.writer import second_user
from tools.localcluster import LocalCluster
from tools.localwebhook import RunningWebhook, as_body, grant_edit, guard, register_webhook

pytestmark = pytest.mark.integration
TXN = "leasegate.io/transaction"
Write = Callable[[], Any]
ROUNDS = 300


def impersonating(cluster: LocalCluster, user: str, group: str = "") -> client.ApiClient:
    """A client acting as ``user`` (and ``group``): the admin impersonating them."""
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_for("admin")))
    api.set_default_header("Impersonate-User", user)
    if group:
        api.set_default_header("Impersonate-Group", group)
    return api


def service_account(cluster: LocalCluster, admin: client.ApiClient, namespace: str, name: str) -> client.ApiClient:
    """A client authenticated by a real token of service account ``namespace/name`` (TokenRequest)."""
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account(namespace, as_body({"metadata": {"name": name}}), _preload_content=False)
    token = core.create_namespaced_service_account_token(name, namespace, as_body({"spec": {}})).status.token
    configuration = client.Configuration()
    configuration.host = cluster.server
    configuration.ssl_ca_cert = str(cluster.ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


@pytest.fixture
def crew(locked_ns: str, api_client: ApiClientFactory, cluster: LocalCluster) -> dict[str, client.ApiClient]:
    """Clients of the members' side: dave (a member user), carol (group sre), the deployer service account.

    They get the same RBAC as bob (the Role grant_edit made for developers).
    """
    admin = api_client("admin")
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(locked_ns, as_body({
        "metadata": {"name": "crew-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "developers-edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"},
                     {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "sre"},
                     {"kind": "ServiceAccount", "name": "deployer", "namespace": locked_ns}],
    }), _preload_content=False)
    return {"dave": impersonating(cluster, "dave"), "carol": impersonating(cluster, "carol", "sre"),
            "deployer": service_account(cluster, admin, locked_ns, "deployer")}


def members_of(namespace: str) -> list[str]:
    return ["user:dave", "group:sre", f"sa:{namespace}:deployer"]


def deployment(namespace: str) -> dict[str, Any]:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]}}}}


def refused(write: Write) -> str:
    """The refusal message of ``write``, which must be the webhook's 403."""
    try:
        write()
    except ApiException as exc:
        assert exc.status == 403, exc.body
        return str(json.loads(exc.body)["message"])
    raise AssertionError("the write went through")


def annotate(api: client.ApiClient, namespace: str, **annotations: str) -> Write:
    return lambda: client.AppsV1Api(api).patch_namespaced_deployment(
        "web", namespace, {"metadata": {"annotations": annotations}}, _preload_content=False)


def scale(api: client.ApiClient, namespace: str, replicas: int) -> Write:
    return lambda: client.AppsV1Api(api).patch_namespaced_deployment_scale(
        "web", namespace, {"spec": {"replicas": replicas}}, _preload_content=False)


def delete(api: client.ApiClient, namespace: str) -> Write:
    return lambda: client.AppsV1Api(api).delete_namespaced_deployment("web", namespace, _preload_content=False)


@pytest.fixture
def bound_web(locked_ns: str, api_client: ApiClientFactory, crew: dict[str, client.ApiClient]) -> str:
    """Deployment web, locked by alice for t1 with members dave, group sre and the deployer service account."""
    client.AppsV1Api(api_client("admin")).create_namespaced_deployment(
        locked_ns, as_body(deployment(locked_ns)), _preload_content=False)
    LeaseManager(api_client("alice")).acquire(ResourceKey("apps", "Deployment", locked_ns, "web"), "t1", 600,
                                              members=members_of(locked_ns))
    return locked_ns


def test_a_non_member_with_full_rbac_cannot_write_delete_or_scale(
        bound_web: str, api_client: ApiClientFactory, cluster: LocalCluster, kubectl: KubectlRunner,
        tmp_path: Path) -> None:
    ns, bob = bound_web, api_client("bob")
    messages = [refused(annotate(bob, ns, **{TXN: "t1", "x": "set"}))]  # the annotation set by the write
    annotate(api_client("alice"), ns, **{TXN: "t1"})()  # the principal is a member: now it is stored
    messages.append(refused(annotate(bob, ns, x="carried")))  # carried over
    messages += [refused(delete(bob, ns)), refused(scale(bob, ns, 3))]
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 1/replicas: 5/' \"$1\"\n")
    editor.chmod(0o755)
    out = kubectl("lock", "edit", "deployment/web", "-n", ns, "--txn", "t1", check=False,
                  env=plugin_env(cluster, "bob", KUBE_EDITOR=str(editor)))
    assert out.returncode != 0, out.stdout
    messages.append(out.stderr)
    for message in messages:
        assert "is locked by transaction 't1'" in message and "identity-bound" in message, message
        assert "user:bob is not one of its members" in message, message
        assert f"kubectl lock members add deployment.apps/web -n {ns} --txn t1 --member user:bob" in message
        assert not any(name in message for name in ("dave", "sre", "deployer", "alice")), message
    stored = client.AppsV1Api(api_client("admin")).read_namespaced_deployment("web", ns)
    assert stored.spec.replicas == 1 and "x" not in stored.metadata.annotations


def test_a_member_user_a_member_groups_user_and_a_member_service_account_can(
        bound_web: str, crew: dict[str, client.ApiClient], api_client: ApiClientFactory) -> None:
    ns = bound_web
    annotate(crew["dave"], ns, **{TXN: "t1", "by": "dave"})()  # sets the annotation
    annotate(crew["carol"], ns, by="carol")()  # carried over: counts for any member
    annotate(crew["deployer"], ns, by="deployer")()
    scale(crew["deployer"], ns, 2)()  # scale needs membership only
    apps = client.AppsV1Api(api_client("admin"))
    stored = apps.read_namespaced_deployment("web", ns)
    assert (stored.metadata.annotations["by"], stored.spec.replicas) == ("deployer", 2)
    delete(crew["carol"], ns)()  # so does delete
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("web", ns)
    assert gone.value.status == 404


def test_members_are_changed_only_by_members_and_an_admin_still_gets_out(
        locked_ns: str, api_client: ApiClientFactory, kubectl: KubectlRunner, crew: dict[str, client.ApiClient],
        cluster: LocalCluster) -> None:
    ns = locked_ns
    client.CoreV1Api(api_client("admin")).create_namespaced_config_map(
        ns, as_body({"metadata": {"name": "cfg"}}), _preload_content=False)
    alice = LeaseManager(api_client("alice"))
    ref = alice.acquire(ResourceKey("", "ConfigMap", ns, "cfg"), "t1", 600, members=[])  # alice alone
    assert alice.get_lock(ref).members == Members(users=("alice",))  # type: ignore[union-attr]

    def bob_writes() -> Any:
        return client.CoreV1Api(api_client("bob")).patch_namespaced_config_map(
            "cfg", ns, {"metadata": {"annotations": {TXN: "t1"}}}, _preload_content=False)

    assert "identity-bound" in refused(bob_writes)
    # A non-member can neither add himself through lockcore nor tamper with the annotation.
    with pytest.raises(LeaseOpError) as denied:
        LeaseManager(api_client("bob")).change_members(ref, "t1", add=["user:bob"])
    assert denied.value.status == 403
    tampered = json.dumps({"version": 1, "users": ["bob"]})
    out = kubectl("annotate", "lease", ref.name, "-n", ns, f"{MEMBERS_ANNOTATION}={tampered}", "--overwrite",
                  user="bob", check=False)
    assert out.returncode != 0 and "is identity-bound" in out.stderr and "user:bob is not one" in out.stderr
    assert alice.get_lock(ref).members == Members(users=("alice",))  # type: ignore[union-attr]
    # A member adds bob (a conditional patch); bob, now a member, may write, and add others.
    assert alice.change_members(ref, "t1", add=["user:bob"]).specs() == ("user:alice", "user:bob")
    bob_writes()
    with pytest.raises(LeaseOpError):
        LeaseManager(crew["dave"]).change_members(ref, "t1", add=["user:dave"])
    LeaseManager(api_client("bob")).change_members(ref, "t1", add=["group:sre"])
    annotate_cm = client.CoreV1Api(crew["carol"]).patch_namespaced_config_map
    annotate_cm("cfg", ns, {"metadata": {"annotations": {"by": "carol"}}}, _preload_content=False)
    assert alice.change_members(ref, "t1", remove=["user:bob", "group:sre"]).specs() == ("user:alice",)
    assert "identity-bound" in refused(bob_writes)
    with pytest.raises(MembersError, match="stays a member"):
        alice.change_members(ref, "t1", remove=["user:alice"])
    # An administrator's force-release is the way out; then anyone may write again.
    assert LeaseManager(api_client("admin")).force_release(ref)
    bob_writes()


@pytest.fixture
def requiring(namespace: str, api_client: ApiClientFactory, webhook_factory: WebhookFactory) -> str:
    """A namespace judged by a webhook with ``require_members`` (the chart's config.requireMembers)."""
    running: RunningWebhook = webhook_factory("require-members", require_members="true")
    admin = api_client("admin")
    register_webhook(admin, running)
    grant_edit(admin, namespace, locks=True)
    guard(admin, namespace, running.key)
    client.CoreV1Api(admin).create_namespaced_config_map(
        namespace, as_body({"metadata": {"name": "cfg"}}), _preload_content=False)
    return namespace


def test_require_members_refuses_locks_without_members_at_acquire(
        requiring: str, api_client: ApiClientFactory, cluster: LocalCluster) -> None:
    alice = LeaseManager(api_client("alice"))
    key = ResourceKey("", "ConfigMap", requiring, "cfg")
    with pytest.raises(LeaseOpError) as refusal:
        alice.acquire(key, "t1", 600)
    assert refusal.value.status == 403, getattr(refusal.value.cause, "body", refusal.value.cause)
    assert "requires identity-bound locks" in json.loads(refusal.value.cause.body)["message"]  # type: ignore[attr-defined]
    cli = lockcore(cluster, "acquire", "cm/cfg", "-n", requiring, "--txn", "t1", "--ttl", "5m", user="alice")
    assert cli.returncode == 1 and cli.stderr.startswith("error: admission webhook"), cli.stderr
    assert "requires identity-bound locks" in cli.stderr and cli.stderr.count("\n") == 1, cli.stderr
    assert alice.get_lock(alice.ref_for(key)) is None, "nothing was created"
    ref = alice.acquire(key, "t1", 600, members=["group:sre"])
    assert alice.get_lock(ref).members == Members(users=("alice",), groups=("sre",))  # type: ignore[union-attr]
    assert "identity-bound" in refused(lambda: client.CoreV1Api(api_client("bob")).patch_namespaced_config_map(
        "cfg", requiring, {"metadata": {"annotations": {TXN: "t1"}}}, _preload_content=False))
    alice.release(ref, "t1")
    assert LeaseManager(api_client("admin")).get_lock(LeaseRef(requiring, ref.name)) is None


def test_a_membership_change_binds_from_the_instant_it_returns(
        locked_ns: str, api_client: ApiClientFactory, cluster: LocalCluster) -> None:
    """The shipped webhook (cached lookups) reads an identity-bound lock's Lease fresh: no stale members.

    bob's write comes from another process the instant the change returns; the
    object carries the holder's annotation, which bob's patch carries over
    (proof for a member, nothing for anyone else).
    """
    ns = locked_ns
    client.CoreV1Api(api_client("admin")).create_namespaced_config_map(
        ns, as_body({"metadata": {"name": "cfg", "annotations": {TXN: "t1"}}}), _preload_content=False)
    alice = LeaseManager(api_client("alice"))
    ref = alice.acquire(ResourceKey("", "ConfigMap", ns, "cfg"), "t1", 600, members=[])
    refused_as_member, admitted_after_removal = 0, 0
    with second_user(cluster.kubeconfig_for("bob"), ns) as bob:
        for _ in range(ROUNDS):
            alice.change_members(ref, "t1", add=["user:bob"])
            refused_as_member += bob.write("patch", "cfg") != 200
            alice.change_members(ref, "t1", remove=["user:bob"])
            admitted_after_removal += bob.write("patch", "cfg") != 403
    assert (refused_as_member, admitted_after_removal) == (0, 0)
