"""The ValidatingWebhookConfiguration: build one, and keep its caBundle current.

:func:`webhook_configuration` is the one definition of what the webhook is
registered with; the tests and the demo register the webhook with it, and the
chart renders the same webhooks from the same values (a test renders the
chart for several value sets and compares). Under a profile that fences (the
default) the API server calls the webhook only for writes of locked objects
and for changes of lock Leases that only the webhook can judge:

* ``<name>``: UPDATE and DELETE (also of ``/status``) of every resource by
  default, only for objects whose stored version carries the marker
  ``leasegate.io/locked`` (objectSelector, plus a matchCondition: adding a
  marker to an unmarked object locks nothing, so acquire's stamp needs no
  call) and never for the principal's own release of its marker (the marker
  removed and ``leasegate.io/released=<txn>`` recorded, as lockcore does).
* ``leases.<name>``: CREATE, UPDATE and DELETE of lock Leases, except what the
  API server can see is the rightful holder's (matchConditions,
  :func:`rightful_lease_write`): a renewal or release by the principal
  recorded on the Lease (or a member), a new lock recording its creator. Only
  these reach the webhook: another identity's change, a takeover, members
  written, and (``require_members``) locks that must name members.

Creates and scales are judged by the reservation policy
(:mod:`webhook.policy`) in the API server itself. So when the webhook is down
only writes of locked objects and other identities' changes of lock Leases
are refused: nothing else waits on it (docs/INVARIANTS.md, "outage radius").

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
from pathlib import Path
from typing import Any

from lockcore.kube import (
    LEASE_GROUP,
    LOCKABLE_RESOURCES,
    LOCKED_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PRINCIPAL_ANNOTATION,
    RELEASED_ANNOTATION,
    VWC_PATH,
)
from lockcore.members import MEMBERS_ANNOTATION
from lockcore.profiles import LockProfile, Profile
from webhook import cel
from webhook.apiserver import ApiServer
from webhook.policy import ALL_RESOURCES, keepalive_policies, probe_policy, reservation_policy, scale_rules

log = logging.getLogger("leasegate.registration")
WEBHOOK_NAME = "locks.leasegate.io"

# What can be locked by default: every kind under a profile that fences (unmarked
# objects never reach the webhook, so covering everything costs nothing); the
# classic list under one that does not (every covered write is then a call).
DEFAULT_RESOURCES: tuple[Mapping[str, Sequence[str]], ...] = ALL_RESOURCES


def default_resources(profile: LockProfile) -> Sequence[Mapping[str, Sequence[str]]]:
    return DEFAULT_RESOURCES if profile.fences else LOCKABLE_RESOURCES


def _rule(groups: Sequence[str], resources: Sequence[str], operations: Sequence[str]) -> dict[str, Any]:
    return {"apiGroups": list(groups), "apiVersions": ["*"], "resources": list(resources),
            "operations": list(operations), "scope": "*"}


def marked_object_conditions() -> list[dict[str, str]]:
    """When a write of a marked object needs no call: see the module doc."""
    unmarks = (f"request.operation == 'UPDATE' && !{cel.has_label('object', LOCKED_LABEL)} && "
               f"{cel.annotation('object', RELEASED_ANNOTATION)} == {cel.label('oldObject', LOCKED_LABEL)}")
    return [
        {"name": "leasegate-marked-before",
         "expression": f"request.operation != 'UPDATE' || {cel.has_label('oldObject', LOCKED_LABEL)}"},
        {"name": "leasegate-skip-principal-release",
         "expression": f"!({unmarks} && {cel.records('oldObject', PRINCIPAL_ANNOTATION)})"},
    ]


def rightful_lease_write(txn_label: str, *, require_members: bool) -> str:
    """CEL: a lock Lease write the webhook would admit, provable without it.

    A release (DELETE) or a renewal (UPDATE keeping holder, principal, members
    and transaction label) by the recorded principal or a member; a CREATE
    recording its creator as principal, without members (unless every lock
    must name some) or with members in lockcore's canonical form that name the
    creator (other members annotations are the webhook's to read).
    """
    holder = "(has({0}.spec) && has({0}.spec.holderIdentity) ? {0}.spec.holderIdentity : '')"
    kept = " && ".join([
        f"{cel.annotation('object', PRINCIPAL_ANNOTATION)} == {cel.annotation('oldObject', PRINCIPAL_ANNOTATION)}",
        f"{cel.annotation('object', MEMBERS_ANNOTATION)} == {cel.annotation('oldObject', MEMBERS_ANNOTATION)}",
        f"{cel.label('object', txn_label)} == {cel.label('oldObject', txn_label)}",
        f"{holder.format('object')} == {holder.format('oldObject')}",
    ])
    holds = (f"({cel.records('oldObject', PRINCIPAL_ANNOTATION)} || "
             f"({cel.has_annotation('oldObject', MEMBERS_ANNOTATION)} && {cel.is_member('oldObject')}))")
    terms = [f"(request.operation == 'DELETE' && {holds})",
             f"(request.operation == 'UPDATE' && {holds} && {kept})"]
    bound = cel.lists_requester("object")
    members = bound if require_members else f"(!{cel.has_annotation('object', MEMBERS_ANNOTATION)} || {bound})"
    terms.append(f"(request.operation == 'CREATE' && {cel.records('object', PRINCIPAL_ANNOTATION)} && {members})")
    return " || ".join(terms)


def webhook_entries(profile: LockProfile, resources: Sequence[Mapping[str, Sequence[str]]] | None = None,
                    *, name: str = WEBHOOK_NAME, require_members: bool = False) -> list[dict[str, Any]]:
    """The webhooks' names, rules, objectSelectors and own matchConditions (the parts that depend on the profile)."""
    resources = default_resources(profile) if resources is None else resources
    plain = [(r["apiGroups"], r["resources"]) for r in resources]
    with_status = [(g, [*rs, *(f"{r}/status" for r in rs)]) for g, rs in plain]
    if not profile.fences:
        rules = [_rule(g, rs, ["CREATE", "UPDATE", "DELETE"]) for g, rs in with_status] + scale_rules()
        return [{"name": name, "rules": rules, "objectSelector": {}, "matchConditions": []}]
    rightful = rightful_lease_write(profile.txn_label, require_members=require_members)
    return [
        {"name": name, "rules": [_rule(g, rs, ["UPDATE", "DELETE"]) for g, rs in with_status],
         "objectSelector": _exists(LOCKED_LABEL), "matchConditions": marked_object_conditions()},
        {"name": f"leases.{name}", "rules": [_rule([LEASE_GROUP], ["leases"], ["CREATE", "UPDATE", "DELETE"])],
         "objectSelector": _exists(profile.txn_label),
         "matchConditions": [{"name": "leasegate-skip-rightful-holder", "expression": f"!({rightful})"}]},
    ]


def skip_identities(users: Sequence[str], groups: Sequence[str]) -> list[dict[str, str]]:
    """CEL matchConditions that skip the call for exempt users and groups (the chart's skipExemptIdentities).

    So garbage collection and namespace deletion never depend on the webhook
    being reachable.
    """
    conditions = []
    if users:
        conditions.append({"name": "leasegate-skip-exempt-users",
                           "expression": f"!({cel.USERNAME} in {cel.string_list(users)})"})
    if groups:
        conditions.append({"name": "leasegate-skip-exempt-groups",
                           "expression": "!has(request.userInfo.groups) || "
                                         f"!request.userInfo.groups.exists(g, g in {cel.string_list(groups)})"})
    return conditions


def _exists(label: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": label, "operator": "Exists"}]}


def webhook_configuration(
    name: str,
    ca_pem: bytes,
    *,
    url: str = "",
    service: tuple[str, str, int] | None = None,
    profile: LockProfile = LockProfile.of(Profile.LEASEGATE),
    resources: Sequence[Mapping[str, Sequence[str]]] | None = None,
    require_members: bool = False,
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
    webhooks = []
    for entry in webhook_entries(profile, resources, name=webhook_name, require_members=require_members):
        selector = lease_namespace_selector if entry["name"].startswith("leases.") else None
        selector = selector if selector is not None else namespace_selector
        conditions = [*(dict(c) for c in match_conditions), *entry.pop("matchConditions")]
        webhooks.append({**entry, **common, **({"namespaceSelector": selector} if selector is not None else {}),
                         **({"matchConditions": conditions} if conditions else {})})
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


def ensure_ca_bundle(api: ApiServer, name: str, ca_pem: bytes) -> bool:
    """Set every webhook's caBundle in configuration ``name`` to ``ca_pem``.

    Returns whether anything changed. A missing configuration is logged and
    left alone (the chart, not the webhook, owns its existence).
    """
    bundle = base64.b64encode(ca_pem).decode()
    status, body = api.get_json(f"{VWC_PATH}/{name}", timeout=10)
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
    status, body = api.request_json("PUT", f"{VWC_PATH}/{name}", timeout=10, body=body)
    if status != 200:
        raise RuntimeError(f"updating caBundle of {name}: HTTP {status}: {str(body)[:200]}")
    log.info("caBundle of ValidatingWebhookConfiguration %s updated", name)
    return True


# -- the chart's copy -------------------------------------------------------------
CHART_FILE = "charts/leasegate/files/admission.json"
TXN_ANNOTATION_TOKEN = "@TXN_ANNOTATION@"


def chart_file() -> dict[str, Any]:
    """What the chart reads from ``files/admission.json``: every CEL expression and rule this module and
    :mod:`webhook.policy` build, with the transaction annotation as a token the chart replaces.

    The chart composes them with its values exactly as :func:`webhook_configuration` and
    :func:`webhook.policy.admission_policies` do (tests/unit/charts compare the two for several value
    sets, and that this file is current: ``python -m webhook.registration``).
    """
    fenced = LockProfile.of(Profile.LEASEGATE)
    policy = reservation_policy("x", txn_annotation=TXN_ANNOTATION_TOKEN)["spec"]
    return {
        "profiles": {p.value: _profile_facts(LockProfile.of(p)) for p in Profile},
        "defaultResources": {p.value: [dict(r) for r in default_resources(LockProfile.of(p))] for p in Profile},
        "scaleRules": scale_rules(),
        "markedObjectConditions": marked_object_conditions(),
        "rightfulLeaseWrite": {str(required).lower(): rightful_lease_write(fenced.txn_label, require_members=required)
                               for required in (False, True)},
        "policy": {k: policy[k] for k in ("variables", "validations")},
        "excludeResourceRules": policy["matchConstraints"]["excludeResourceRules"],
        "probePolicy": probe_policy("x")["spec"],
        "keepalive": {o["kind"]: o["spec"] for o in keepalive_policies("x")},
    }


def _profile_facts(profile: LockProfile) -> dict[str, Any]:
    """What the chart branches on for a profile: whether it fences, and the holder record it reads."""
    record = profile.holder_record
    return {"fences": profile.fences,
            "holderRecord": None if record is None else {"group": record.group, "plural": record.plural}}


def write_chart_file(root: Path) -> Path:
    path = root / CHART_FILE
    path.write_text(json.dumps(chart_file(), indent=1, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":  # python -m webhook.registration: refresh the chart's copy
    print(write_chart_file(Path(__file__).resolve().parents[1]))
