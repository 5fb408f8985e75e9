"""The ValidatingWebhookConfiguration: build one, and keep its caBundle current.

:func:`webhook_configuration` is the one definition of what the webhook is
registered with; the tests and the demo register the webhook with it, and the
chart renders the same webhooks from the same values (a test renders the
chart and compares). Under a profile that fences (the default) the API server
calls the webhook only where a lock can be:

* ``<name>``: UPDATE and DELETE (also of ``/status``) of the lockable
  resources, only for objects whose old or new version carries the marker
  ``leasegate.io/locked`` (objectSelector). Writes of unlocked objects never
  reach the webhook: they cost nothing and do not fail when it is down.
* ``creates.<name>``: every CREATE of a lockable resource (a lock may name an
  object that does not exist yet) and every ``scale`` (a Scale has no labels).
* ``leases.<name>``: CREATE, UPDATE and DELETE of lock Leases (their
  transaction label), so that only a lock's holder (an identity-bound lock's
  members) or a lock admin can change a live lock, members written are
  valid, and ``require_members`` can refuse a new lock without members.

A profile that does not fence (its operator never stamps markers)
gets one webhook for every write of the lockable resources, and no Lease
protection (its Leases record no principal). Events are never matched.
sideEffects is NoneOnDryRun because Events are skipped on dryRun.
:func:`ensure_ca_bundle` writes a generated CA into an existing configuration.

Example::

    body = webhook_configuration("leasegate", ca_pem, url="https://127.0.0.1:8443/validate")
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lockcore.kube import LEASE_GROUP, LOCKABLE_RESOURCES, LOCKED_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, VWC_PATH
from lockcore.profiles import LockProfile, Profile
from webhook.decision import SCALE_PARENTS
from webhook.kube import KubeHttp

log = logging.getLogger("leasegate.registration")
WEBHOOK_NAME = "locks.leasegate.io"

# What can be locked by default: the chart's webhook.resources (one list, in lockcore.kube).
DEFAULT_RESOURCES: tuple[Mapping[str, Sequence[str]], ...] = LOCKABLE_RESOURCES


def _rule(groups: Sequence[str], resources: Sequence[str], operations: Sequence[str]) -> dict[str, Any]:
    return {"apiGroups": list(groups), "apiVersions": ["*"], "resources": list(resources),
            "operations": list(operations), "scope": "*"}


def _scale_rules() -> list[dict[str, Any]]:
    groups = sorted({group for group, _ in SCALE_PARENTS})
    return [_rule([g], sorted(f"{r}/scale" for group, r in SCALE_PARENTS if group == g), ["UPDATE"])
            for g in groups]


def webhook_entries(profile: LockProfile, resources: Sequence[Mapping[str, Sequence[str]]] = DEFAULT_RESOURCES,
                    *, name: str = WEBHOOK_NAME) -> list[dict[str, Any]]:
    """The webhooks' names, rules and objectSelectors (the parts that depend on the profile)."""
    plain = [(r["apiGroups"], r["resources"]) for r in resources]
    with_status = [(g, [*rs, *(f"{r}/status" for r in rs)]) for g, rs in plain]
    if not profile.fences:
        rules = [_rule(g, rs, ["CREATE", "UPDATE", "DELETE"]) for g, rs in with_status] + _scale_rules()
        return [{"name": name, "rules": rules, "objectSelector": {}}]
    return [
        {"name": name, "rules": [_rule(g, rs, ["UPDATE", "DELETE"]) for g, rs in with_status],
         "objectSelector": _exists(LOCKED_LABEL)},
        {"name": f"creates.{name}", "rules": [_rule(g, rs, ["CREATE"]) for g, rs in plain] + _scale_rules(),
         "objectSelector": {}},
        {"name": f"leases.{name}", "rules": [_rule([LEASE_GROUP], ["leases"], ["CREATE", "UPDATE", "DELETE"])],
         "objectSelector": _exists(profile.txn_label)},
    ]


def skip_identities(users: Sequence[str], groups: Sequence[str]) -> list[dict[str, str]]:
    """CEL matchConditions that skip the call for exempt users and groups (the chart's skipExemptIdentities).

    So garbage collection and namespace deletion never depend on the webhook
    being reachable. JSON string escapes are valid CEL string literals.
    """
    conditions = []
    if users:
        conditions.append({"name": "leasegate-skip-exempt-users",
                           "expression": f"!(request.userInfo.username in {_cel_list(users)})"})
    if groups:
        conditions.append({"name": "leasegate-skip-exempt-groups",
                           "expression": "!has(request.userInfo.groups) || "
                                         f"!request.userInfo.groups.exists(g, g in {_cel_list(groups)})"})
    return conditions


def _cel_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def _exists(label: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": label, "operator": "Exists"}]}


def webhook_configuration(
    name: str,
    ca_pem: bytes,
    *,
    url: str = "",
    service: tuple[str, str, int] | None = None,
    profile: LockProfile = LockProfile.of(Profile.LEASEGATE),
    resources: Sequence[Mapping[str, Sequence[str]]] = DEFAULT_RESOURCES,
    failure_policy: str = "Fail",
    timeout_seconds: int = 5,
    namespace_selector: dict[str, Any] | None = None,
    lease_namespace_selector: dict[str, Any] | None = None,
    match_conditions: Sequence[dict[str, str]] = (),
    webhook_name: str = WEBHOOK_NAME,
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration for the lock webhook.

    Give ``url`` (a webhook outside the cluster) or ``service`` as
    (namespace, name, port). ``lease_namespace_selector`` (default: the same
    as ``namespace_selector``) scopes the Lease webhook: the chart keeps its
    own namespace, where the Leases of cluster-scoped objects live, in it.
    """
    common: dict[str, Any] = {
        "clientConfig": _client_config(ca_pem, url, service), "failurePolicy": failure_policy, "sideEffects": "NoneOnDryRun",
        "admissionReviewVersions": ["v1"], "timeoutSeconds": timeout_seconds, "matchPolicy": "Equivalent",
    }
    if match_conditions:
        common["matchConditions"] = [dict(c) for c in match_conditions]
    webhooks = []
    for entry in webhook_entries(profile, resources, name=webhook_name):
        selector = lease_namespace_selector if entry["name"].startswith("leases.") else None
        selector = selector if selector is not None else namespace_selector
        webhooks.append({**entry, **common, **({"namespaceSelector": selector} if selector is not None else {})})
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
        "webhooks": webhooks,
    }


def _client_config(ca_pem: bytes, url: str, service: tuple[str, str, int] | None) -> dict[str, Any]:
    """How the API server reaches the webhook: ``url``, or ``service`` as (namespace, name, port)."""
    if bool(url) == bool(service):
        raise ValueError("give exactly one of url or service")
    bundle = base64.b64encode(ca_pem).decode()
    if service is None:
        return {"caBundle": bundle, "url": url}
    namespace, name, port = service
    return {"caBundle": bundle, "service": {"namespace": namespace, "name": name, "port": port, "path": "/validate"}}


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
