"""The janus saga operator's requests (aalpar/janus v0.2.3), reproduced on the wire for the tests.

The operator cannot be built here (the Go module proxy does not serve it), so
the tests send what its source sends, request by request (docs/lockcore.md
says how the real operator was run against leasegate by hand):

* **locks** (internal/lock ``LeaseManager``, as the operator's own identity):
  a Lease named ``janus-lock-<ns>-<kind>-<name>`` (lowercased) in ``<ns>``,
  the target's namespace, or the Transaction's for a cluster-scoped target
  (the controller's ``resolveNamespace``); labels
  ``app.kubernetes.io/managed-by=janus`` and ``janus.io/transaction=<txn>``;
  ``holderIdentity=<txn>``, acquire/renew times and ``leaseDurationSeconds``.
* **steps** (internal/controller ``applyChange``/``applyRollback``), all as
  ``system:serviceaccount:<txn-ns>:<spec.serviceAccountName>`` (the
  controller impersonates it; here the account's own token), with the
  controller-runtime client's user agent ``manager/...``:
  Update = PUT of the step's content with the resourceVersion read at
  prepare, no fieldManager (the server records ``manager``); Delete = DELETE
  with a resourceVersion precondition; Create and Patch = server-side apply
  as field manager ``janus-<txn>`` with force; rollback = the reverse of each
  (PUT of the prior object, DELETE, apply of prior values, POST of the
  deleted object).

The Transaction CRD below is ours, minimal (the fields the webhook reads),
not janus's: group ``tx.janus.io``, version ``v1alpha1``, plural
``transactions``, namespaced, ``spec.serviceAccountName`` required, unknown
fields preserved.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.lease import format_micro_time
from tools.localcluster import LocalCluster
from tools.localwebhook import as_body, create_if_absent

GROUP, VERSION, PLURAL = "tx.janus.io", "v1alpha1", "transactions"
# controller-runtime's default user agent for a binary named "manager" (janus's image builds
# ./cmd/controller as /manager; `make build-controller` names it bin/controller, whose field manager
# would be "controller"). The webhook does not look at either.
USER_AGENT = "manager/v0.0.0 (linux/amd64) kubernetes/$Format"
APPLY = "application/apply-patch+yaml"

TRANSACTION_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "names": {"kind": "Transaction", "listKind": "TransactionList", "plural": PLURAL, "singular": "transaction"},
        "scope": "Namespaced",
        "versions": [{
            "name": VERSION, "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"spec": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True,
                    "required": ["serviceAccountName"],
                    "properties": {"serviceAccountName": {"type": "string", "minLength": 1}},
                }},
            }},
        }],
    },
}


def install_transaction_crd(admin: client.ApiClient, timeout: float = 30) -> None:
    """Create our minimal Transaction CRD (once) and wait until it is served."""
    create_if_absent(client.ApiextensionsV1Api(admin).create_custom_resource_definition, TRANSACTION_CRD)
    custom = client.CustomObjectsApi(admin)
    deadline = time.monotonic() + timeout
    while True:
        try:
            custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, _preload_content=False)
            return
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create_transaction(admin: client.ApiClient, namespace: str, name: str, service_account: str) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Transaction", "metadata": {"name": name},
            "spec": {"serviceAccountName": service_account, "sealed": True}}
    client.CustomObjectsApi(admin).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body,
                                                                   _preload_content=False)


def set_service_account(admin: client.ApiClient, namespace: str, name: str, service_account: str) -> None:
    client.CustomObjectsApi(admin).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"serviceAccountName": service_account}},
        _preload_content=False)


def lease_name(namespace: str, kind: str, name: str) -> str:
    """internal/lock LeaseName."""
    return f"janus-lock-{namespace}-{kind}-{name}".lower()


def acquire(operator: client.ApiClient, namespace: str, kind: str, name: str, txn: str,
            seconds: int = 300) -> str:
    """internal/lock createLease: the Lease janus creates for ``kind``/``name`` locked from ``namespace``."""
    now = format_micro_time(datetime.now(timezone.utc))
    lease = lease_name(namespace, kind, name)
    body = {"metadata": {"name": lease, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "janus", "janus.io/transaction": txn}},
            "spec": {"holderIdentity": txn, "leaseDurationSeconds": seconds, "acquireTime": now, "renewTime": now}}
    client.CoordinationV1Api(operator).create_namespaced_lease(namespace, as_body(body), _preload_content=False)
    return lease


def release(operator: client.ApiClient, namespace: str, lease: str) -> None:
    """internal/lock Release (the holder checked): delete the Lease."""
    client.CoordinationV1Api(operator).delete_namespaced_lease(lease, namespace, _preload_content=False)


def expired(seconds: int = 300) -> str:
    return format_micro_time(datetime.now(timezone.utc) - timedelta(seconds=seconds + 60))


def service_account_client(cluster: LocalCluster, admin: client.ApiClient, namespace: str,
                           name: str) -> client.ApiClient:
    """A client authenticated by a real token of ``namespace/name`` (TokenRequest), janus's user agent."""
    core = client.CoreV1Api(admin)
    try:
        core.create_namespaced_service_account(namespace, as_body({"metadata": {"name": name}}),
                                               _preload_content=False)
    except ApiException as exc:
        if exc.status != 409:
            raise
    token = core.create_namespaced_service_account_token(name, namespace, as_body({"spec": {}})).status.token
    configuration = client.Configuration()
    configuration.host = cluster.server
    configuration.ssl_ca_cert = str(cluster.ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


@dataclass(frozen=True)
class Target:
    """One object janus's steps write: a ConfigMap (namespaced) or a ClusterRole (cluster-scoped)."""

    kind: str
    name: str
    namespace: str = ""

    @property
    def api_version(self) -> str:
        return "v1" if self.kind == "ConfigMap" else "rbac.authorization.k8s.io/v1"

    def manifest(self, **fields: Any) -> dict[str, Any]:
        meta = {"name": self.name, **({"namespace": self.namespace} if self.namespace else {})}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta, **fields}

    def get(self, api: client.ApiClient) -> dict[str, Any]:
        if self.kind == "ConfigMap":
            found = client.CoreV1Api(api).read_namespaced_config_map(self.name, self.namespace, _preload_content=False)
        else:
            found = client.RbacAuthorizationV1Api(api).read_cluster_role(self.name, _preload_content=False)
        body: dict[str, Any] = json.loads(found.data)
        return body

    def update(self, api: client.ApiClient, body: dict[str, Any], resource_version: str) -> None:
        """applyChange Update: PUT with the prepared resourceVersion, no fieldManager."""
        meta = {**body["metadata"], "resourceVersion": resource_version}
        body = {**body, "metadata": meta}
        if self.kind == "ConfigMap":
            client.CoreV1Api(api).replace_namespaced_config_map(self.name, self.namespace, body, _preload_content=False)
        else:
            client.RbacAuthorizationV1Api(api).replace_cluster_role(self.name, body, _preload_content=False)

    def apply(self, api: client.ApiClient, body: dict[str, Any], manager: str) -> None:
        """ssaApply: server-side apply as ``manager`` (janus: ``janus-<txn>``) with force."""
        options = {"field_manager": manager, "force": True, "_content_type": APPLY, "_preload_content": False}
        if self.kind == "ConfigMap":
            client.CoreV1Api(api).patch_namespaced_config_map(self.name, self.namespace, body, **options)
        else:
            client.RbacAuthorizationV1Api(api).patch_cluster_role(self.name, body, **options)

    def delete(self, api: client.ApiClient, resource_version: str = "") -> None:
        """applyChange Delete: DELETE with a resourceVersion precondition when one was prepared."""
        body = {"preconditions": {"resourceVersion": resource_version}} if resource_version else {}
        if self.kind == "ConfigMap":
            client.CoreV1Api(api).delete_namespaced_config_map(self.name, self.namespace, body=body,
                                                               _preload_content=False)
        else:
            client.RbacAuthorizationV1Api(api).delete_cluster_role(self.name, body=body, _preload_content=False)

    def create(self, api: client.ApiClient, body: dict[str, Any]) -> None:
        """applyRollback of a Delete: POST the stored object."""
        if self.kind == "ConfigMap":
            client.CoreV1Api(api).create_namespaced_config_map(self.namespace, body, _preload_content=False)
        else:
            client.RbacAuthorizationV1Api(api).create_cluster_role(body, _preload_content=False)


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as janus's rollback ConfigMap keeps it for re-creation (no server-set metadata)."""
    meta = {k: v for k, v in obj["metadata"].items()
            if k not in {"resourceVersion", "uid", "creationTimestamp", "managedFields"}}
    return {**obj, "metadata": meta}
