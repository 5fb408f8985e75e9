"""The ValidatingWebhookConfiguration: build one, and keep its caBundle current.

:func:`webhook_configuration` is the one definition of what the webhook must
be registered with (rules that never match Leases or Events, sideEffects
NoneOnDryRun because Events are skipped on dryRun, admissionReviewVersions v1,
failurePolicy consistent with ``lookup_failure_policy``); the tests register
the webhook with it and the chart renders the same fields.
:func:`ensure_ca_bundle` writes a generated CA into an existing configuration.

Example::

    body = webhook_configuration("leasegate", ca_pem, url="https://127.0.0.1:8443/validate")
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

from webhook.kube import KubeHttp

log = logging.getLogger("leasegate.registration")
VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
WEBHOOK_NAME = "locks.leasegate.io"

# What the webhook judges by default: common workload and configuration
# objects. Leases (the locks) and Events (the audit) must never be matched.
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "apiVersions": ["v1"],
     "resources": ["configmaps", "secrets", "services", "serviceaccounts", "namespaces"]},
    {"apiGroups": ["apps"], "apiVersions": ["v1"],
     "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"]},
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"]},
    {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["v1"],
     "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"]},
    {"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "resources": ["ingresses", "networkpolicies"]},
)


def webhook_configuration(
    name: str,
    ca_pem: bytes,
    *,
    url: str = "",
    service: tuple[str, str, int] | None = None,
    rules: Sequence[dict[str, Any]] = DEFAULT_RULES,
    failure_policy: str = "Fail",
    timeout_seconds: int = 5,
    namespace_selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration for the lock webhook.

    Give ``url`` (a webhook outside the cluster) or ``service`` as
    (namespace, name, port).
    """
    if bool(url) == bool(service):
        raise ValueError("give exactly one of url or service")
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_pem).decode()}
    if url:
        client_config["url"] = url
    else:
        assert service is not None
        namespace, svc, port = service
        client_config["service"] = {"namespace": namespace, "name": svc, "port": port, "path": "/validate"}
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "clientConfig": client_config,
        "rules": [{**rule, "operations": ["CREATE", "UPDATE", "DELETE"], "scope": "*"} for rule in rules],
        "failurePolicy": failure_policy,
        "sideEffects": "NoneOnDryRun",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": timeout_seconds,
        "matchPolicy": "Equivalent",
    }
    if namespace_selector is not None:
        webhook["namespaceSelector"] = namespace_selector
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "leasegate"}},
        "webhooks": [webhook],
    }


def ensure_ca_bundle(kube: KubeHttp, name: str, ca_pem: bytes) -> bool:
    """Set every webhook's caBundle in configuration ``name`` to ``ca_pem``.

    Returns whether anything changed. A missing configuration is logged and
    left alone (the chart, not the webhook, owns its existence).
    """
    bundle = base64.b64encode(ca_pem).decode()
    status, body = kube.get_json(f"{VWC_PATH}/{name}", timeout=10)
    if status == 404:
        log.warning("ValidatingWebhookConfiguration %s not found; caBundle not written", name)
        return False
    if status != 200 or not isinstance(body, dict):
        raise RuntimeError(f"reading ValidatingWebhookConfiguration {name}: HTTP {status}")
    webhooks = body.get("webhooks") or []
    if all((w.get("clientConfig") or {}).get("caBundle") == bundle for w in webhooks):
        return False
    for w in webhooks:
        w.setdefault("clientConfig", {})["caBundle"] = bundle
    # A full update guarded by resourceVersion: a concurrent edit makes this fail, not clobber.
    status, body = kube.request_json("PUT", f"{VWC_PATH}/{name}", timeout=10, body=body)
    if status != 200:
        raise RuntimeError(f"updating caBundle of {name}: HTTP {status}: {str(body)[:200]}")
    log.info("caBundle of ValidatingWebhookConfiguration %s updated", name)
    return True
