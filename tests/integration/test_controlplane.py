"""The control plane the suite runs on is a real kube-apiserver, not a fake."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import ApiClientFactory, KubectlRunner
from tools.localcluster import LocalCluster


def test_version_is_a_real_apiserver(cluster: LocalCluster) -> None:
    version = cluster.version()
    assert version["gitVersion"].startswith("v1.35.")
    assert version["platform"] == "linux/amd64"


def test_lease_crud_and_stale_update_conflict(api_client: ApiClientFactory, namespace: str) -> None:
    leases = client.CoordinationV1Api(api_client("admin"))
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="probe"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=10),
    )
    created = leases.create_namespaced_lease(namespace, body)
    stale_version = created.metadata.resource_version

    created.spec.holder_identity = "b"
    updated = leases.replace_namespaced_lease("probe", namespace, created)
    assert updated.spec.holder_identity == "b"
    assert updated.metadata.resource_version != stale_version

    updated.metadata.resource_version = stale_version
    updated.spec.holder_identity = "c"
    with pytest.raises(ApiException) as conflict:
        leases.replace_namespaced_lease("probe", namespace, updated)
    assert conflict.value.status == 409
    assert leases.read_namespaced_lease("probe", namespace).spec.holder_identity == "b"

    leases.delete_namespaced_lease("probe", namespace)
    with pytest.raises(ApiException) as gone:
        leases.read_namespaced_lease("probe", namespace)
    assert gone.value.status == 404


def test_configmap_crud_through_kubectl(kubectl: KubectlRunner, namespace: str) -> None:
    kubectl("create", "configmap", "cfg", "-n", namespace, "--from-literal=k=v1")
    kubectl("annotate", "configmap", "cfg", "-n", namespace, "note=hello")
    got = json.loads(kubectl("get", "configmap", "cfg", "-n", namespace, "-o", "json").stdout)
    assert got["data"] == {"k": "v1"}
    assert got["metadata"]["annotations"]["note"] == "hello"
    kubectl("delete", "configmap", "cfg", "-n", namespace)
    missing = kubectl("get", "configmap", "cfg", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_rbac_is_enforced_for_ordinary_users(
    api_client: ApiClientFactory, kubectl: KubectlRunner, namespace: str
) -> None:
    denied = kubectl("get", "configmaps", "-n", namespace, user="alice", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    rbac = client.RbacAuthorizationV1Api(api_client("admin"))
    rbac.create_namespaced_role(namespace, client.V1Role(
        metadata=client.V1ObjectMeta(name="cm-reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
    ))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="alice-cm-reader"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"),
        subjects=[client.RbacV1Subject(kind="User", name="alice", api_group="rbac.authorization.k8s.io")],
    ))
    assert kubectl("auth", "can-i", "list", "configmaps", "-n", namespace, user="alice").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "list", "configmaps", "-n", namespace, user="bob",
                   check=False).stdout.strip() == "no"
    who = json.loads(kubectl("auth", "whoami", "-o", "json", user="bob").stdout)
    assert who["status"]["userInfo"]["username"] == "bob"
