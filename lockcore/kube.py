"""Kubernetes facts the library, the webhook, the chart tests and the tools share.

One module of API constants and name rules, so a group, a path or a label key
is spelled once. Nothing here does I/O.

Example::

    >>> lease_path("shop", "lg.configmap.web")
    '/apis/coordination.k8s.io/v1/namespaces/shop/leases/lg.configmap.web'
    >>> DNS_LABEL.fullmatch("shop") is not None
    True
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import quote

# -- name rules (apimachinery validation) ---------------------------------------
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A label value (also what a transaction name must be: it is stored as one).
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
# A qualified annotation/label key: optional DNS-subdomain prefix, then a name.
QUALIFIED_KEY = re.compile(
    r"(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)

# -- groups and resources -------------------------------------------------------
LEASE_GROUP = "coordination.k8s.io"
LEASE_API_VERSION = f"{LEASE_GROUP}/v1"
LEASES = (LEASE_GROUP, "leases")
NAMESPACES = ("", "namespaces")
ALL_LEASES_PATH = f"/apis/{LEASE_API_VERSION}/leases"
VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"

# -- labels and annotations leasegate writes -----------------------------------
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "leasegate"
# On a locked object: the transaction whose lock it is. The webhook is called
# for updates and deletes of objects carrying it (objectSelector), no others.
LOCKED_LABEL = "leasegate.io/locked"
# On a lock Lease, and on the object its holder stamped: who took the lock.
PRINCIPAL_ANNOTATION = "leasegate.io/holder-principal"
RESOURCE_ANNOTATION = "leasegate.io/resource"
# On a lock Lease: ``group/Kind/namespace/name`` of the object it locks, the
# form the reservation policy's CEL builds from a request (no escaping: none
# of the four parts can contain a slash).
TARGET_ANNOTATION = "leasegate.io/target"
# On an object its lock's principal released: the transaction released. With the
# marker gone and the principal recorded, the API server skips the webhook call.
RELEASED_ANNOTATION = "leasegate.io/released"
# On a dry-run Lease create: the lock Lease whose reservation acquire waits for.
PROBE_LABEL = "leasegate.io/probe"

ENV_PREFIX = "LEASEGATE_"

# What can be locked by default (the registration's and the chart's
# webhook.resources; what `kubectl lock prune` searches): workload,
# configuration and access objects, namespaced and cluster-scoped. Leases
# (the locks) and Events (the audit) are never listed here.
LOCKABLE_RESOURCES: tuple[dict[str, list[str]], ...] = (
    {"apiGroups": [""], "resources": ["configmaps", "secrets", "services", "serviceaccounts",
                                      "persistentvolumeclaims", "namespaces"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"]},
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"]},
    {"apiGroups": ["rbac.authorization.k8s.io"],
     "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"]},
)


# Parents whose /scale subresource can be mapped back to a lock key (a Scale
# names neither the parent kind nor carries its labels).
SCALE_PARENTS: dict[tuple[str, str], str] = {
    ("apps", "deployments"): "Deployment",
    ("apps", "replicasets"): "ReplicaSet",
    ("apps", "statefulsets"): "StatefulSet",
    ("", "replicationcontrollers"): "ReplicationController",
}


def lease_path(namespace: str, name: str = "") -> str:
    """The REST path of a Lease (or of a namespace's Lease collection)."""
    base = f"/apis/{LEASE_API_VERSION}/namespaces/{quote(namespace)}/leases"
    return f"{base}/{quote(name)}" if name else base


def events_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/events" + (f"/{quote(name)}" if name else "")


def namespace_path(name: str) -> str:
    return f"/api/v1/namespaces/{quote(name)}"


def object_path(group: str, version: str, plural: str, namespace: str, name: str) -> str:
    """The REST path of one object (core group when ``group`` is empty)."""
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    scope = f"/namespaces/{quote(namespace)}" if namespace else ""
    return f"{prefix}{scope}/{plural}/{quote(name)}"


def format_time(moment: datetime) -> str:
    """RFC 3339 to the second, the wire form of metav1.Time (Events)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """RFC 3339 with microseconds, the wire form of metav1.MicroTime (Leases)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def escape_json_pointer(key: str) -> str:
    """A map key as one JSON-pointer segment (``leasegate.io/locked`` -> ``leasegate.io~1locked``)."""
    return key.replace("~", "~0").replace("/", "~1")
