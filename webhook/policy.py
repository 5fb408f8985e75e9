"""The reservation policy: creates and scales of locked names, judged in the API server itself.

A lock may name an object that does not exist yet, or that its holder deletes
and creates again; and a ``scale`` carries no labels, so the marker cannot
route it to the webhook. Calling the webhook for every create and every
scale would put it on the path of every ``helm install``: when it is down,
every create of every kind would be refused. Instead a
ValidatingAdmissionPolicy (in-process CEL, no webhook call, unaffected by
the webhook's availability) judges them, with the lock Leases themselves as
its params:

* namespaced objects: the lock Leases of the request's namespace (where
  lockcore keeps them); cluster-scoped objects: those of the lock namespace;
* a param whose ``leasegate.io/target`` annotation names the object being
  created (``group/Kind/namespace/name``) reserves it: the create must carry
  the marker and the transaction annotation of the holder (and, for an
  identity-bound lock, come from a member), as the webhook would require;
* a scale of a locked object must come from the principal that took the lock
  (or a member);
* a dry-run create of a Lease labelled ``leasegate.io/probe=<lock lease>`` is
  refused while that lock Lease is visible to the policy: acquire waits for
  that refusal, so a reservation holds from the instant acquire returns
  (the API server's param informer may lag the write by milliseconds).

CEL has no clock: a lock that expired without being released keeps reserving
its name until it is released, taken over or reaped (docs/webhook.md).
Namespaces with no lock Lease evaluate nothing (``parameterNotFoundAction:
Allow``), so creates elsewhere cost next to nothing.

Example::

    >>> policy = reservation_policy("reservations.locks.leasegate.io")
    >>> policy["spec"]["paramKind"]["kind"]
    'Lease'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lockcore.kube import (
    LEASE_API_VERSION,
    LEASE_GROUP,
    LOCKED_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PRINCIPAL_ANNOTATION,
    PROBE_LABEL,
    SCALE_PARENTS,
    TARGET_ANNOTATION,
)
from lockcore.members import MEMBERS_ANNOTATION
from webhook import cel

API_VERSION = "admissionregistration.k8s.io/v1"
# Reviews and Events are created by the API server's own clients on every
# request path, and the ledger's reports by the webhook: never the subject of
# a lock (a reserved report name would silence a namespace's ledger).
_EXCLUDED = (
    {"apiGroups": [""], "resources": ["events"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"]},
    {"apiGroups": ["openreports.io"], "resources": ["reports", "clusterreports"]},
    {"apiGroups": ["authentication.k8s.io", "authorization.k8s.io"], "resources": ["*"]},
)
ALL_RESOURCES: tuple[Mapping[str, Sequence[str]], ...] = ({"apiGroups": ["*"], "resources": ["*"]},)
PROBE_WARNING = "leasegate: reservations are judged in namespace"
VALIDATION_ACTIONS: Mapping[str, list[str]] = {"deny": ["Deny"], "warn": ["Warn"], "dryrun": ["Audit"]}
_STRICTNESS = ("dryrun", "warn", "deny")
# request.subResource is absent, not empty, for the object itself (request.namespace too,
# for a cluster-scoped object): read them only behind has().
_IS_SCALE = "(has(request.subResource) && request.subResource == 'scale')"


def _rule(groups: Sequence[str], resources: Sequence[str], operations: Sequence[str],
          scope: str = "*") -> dict[str, Any]:
    return {"apiGroups": list(groups), "apiVersions": ["*"], "resources": list(resources),
            "operations": list(operations), "scope": scope}


def scale_rules(scope: str = "*") -> list[dict[str, Any]]:
    """UPDATE of every ``scale`` subresource a lock key can be derived for."""
    groups = sorted({group for group, _ in SCALE_PARENTS})
    return [_rule([g], sorted(f"{r}/scale" for group, r in SCALE_PARENTS if group == g), ["UPDATE"], scope)
            for g in groups]


def _create_rules(resources: Sequence[Mapping[str, Sequence[str]]], scope: str) -> list[dict[str, Any]]:
    # Probes are Lease creates: always matched, whatever the lockable kinds.
    return [_rule(r["apiGroups"], r["resources"], ["CREATE"], scope) for r in resources] + \
        [_rule([LEASE_GROUP], ["leases"], ["CREATE"], scope)]


def _variables(txn_annotation: str) -> list[dict[str, str]]:
    parents = "{" + ", ".join(f"{cel.literal(r)}: {cel.literal(k)}" for (_, r), k in sorted(SCALE_PARENTS.items())) + "}"
    is_namespace = "(request.resource.group == '' && request.resource.resource == 'namespaces')"
    created = ("request.kind.group + '/' + request.kind.kind + '/' + "
               f"({is_namespace} || !has(request.namespace) ? '' : request.namespace) + '/' + object.metadata.name")
    scaled = (f"(request.resource.resource in {parents} ? request.resource.group + '/' + "
              f"{parents}[request.resource.resource] + '/' + request.namespace + '/' + request.name : '')")
    holder = "(has(params.spec) && has(params.spec.holderIdentity) ? params.spec.holderIdentity : '')"
    return [
        {"name": "target", "expression": f"{_IS_SCALE} ? {scaled} : {created}"},
        {"name": "holder", "expression": holder},
        # The object as kubectl names it (deployment.apps/web -n shop), as the webhook's messages do.
        {"name": "shown", "expression": (
            "variables.target.split('/')[1].lowerAscii() + (variables.target.split('/')[0] == '' ? '' : '.' + "
            "variables.target.split('/')[0]) + '/' + variables.target.split('/')[3] + "
            "(variables.target.split('/')[2] == '' ? '' : ' -n ' + variables.target.split('/')[2])")},
        {"name": "reserved", "expression": (f"variables.holder != '' && {cel.annotation('params', TARGET_ANNOTATION)}"
                                            " == variables.target")},
        {"name": "member", "expression": (f"{cel.has_annotation('params', MEMBERS_ANNOTATION)} && "
                                          f"{cel.is_member('params')}")},
        {"name": "proven", "expression": (
            f"{cel.label('object', LOCKED_LABEL)} == variables.holder && "
            f"{cel.annotation('object', txn_annotation)} == variables.holder && "
            f"(!{cel.has_annotation('params', MEMBERS_ANNOTATION)} || variables.member)")},
    ]


def _validations(txn_annotation: str) -> list[dict[str, str]]:
    lease = "params.metadata.namespace + '/' + params.metadata.name"
    head = (f"\"leasegate: \" + variables.shown + \" is locked by transaction '\" + variables.holder + "
            f"\"' (lease \" + {lease} + \")\"")
    probe = (f"request.resource.group == {cel.literal(LEASE_GROUP)} && request.resource.resource == 'leases' && "
             f"request.operation == 'CREATE' && {cel.label('object', PROBE_LABEL)} == params.metadata.name")
    return [
        {"expression": f"!({probe})", "reason": "Invalid",
         "messageExpression": f"'leasegate: lock lease ' + {lease} + ' is in force'"},
        {"expression": (f"!{_IS_SCALE} || !variables.reserved || variables.member || "
                        f"{cel.records('params', PRINCIPAL_ANNOTATION)}"),
         "reason": "Forbidden",
         "messageExpression": (f"{head} + ({cel.has_annotation('params', MEMBERS_ANNOTATION)} ? "
                               "': the lock is identity-bound and user:' + request.userInfo.username + "
                               "' is not one of its members; to be added, ask a member of transaction \\'' + "
                               "variables.holder + '\\' to run `kubectl lock members add ' + variables.shown + "
                               "' --txn ' + variables.holder + ' --member user:' + request.userInfo.username + "
                               "'`, or wait for the lock to be released' : "
                               "\": a scale carries no annotation, so only user '\" + "
                               f"{cel.annotation('params', PRINCIPAL_ANNOTATION)} + "
                               "\"' who acquired the lock may scale it\")")},
        {"expression": "request.operation != 'CREATE' || !variables.reserved || variables.proven",
         "reason": "Forbidden",
         "messageExpression": (f"{head} + ': to create it as part of the transaction, set label "
                               f"{LOCKED_LABEL}=' + variables.holder + ' and annotation {txn_annotation}=' + "
                               "variables.holder + ' (`kubectl lock apply` stamps both), or wait for the lock to be "
                               "released (a lock that expired unreleased keeps the name until `kubectl lock prune "
                               "--apply` or an acquire takes it over)'")},
    ]


def reservation_policy(name: str, *, txn_annotation: str = "leasegate.io/transaction",
                       resources: Sequence[Mapping[str, Sequence[str]]] = ALL_RESOURCES,
                       match_conditions: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy (one per installation; the bindings scope it)."""
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "paramKind": {"apiVersion": LEASE_API_VERSION, "kind": "Lease"},
        "matchConstraints": {
            "matchPolicy": "Equivalent",
            "resourceRules": _create_rules(resources, "*") + scale_rules(),
            "excludeResourceRules": [_rule(r["apiGroups"], r["resources"], ["*"]) for r in _EXCLUDED],
        },
        "variables": _variables(txn_annotation),
        "validations": _validations(txn_annotation),
    }
    if match_conditions:
        spec["matchConditions"] = [dict(c) for c in match_conditions]
    return {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}, "spec": spec}


def reservation_bindings(policy: str, *, lock_namespace: str, txn_label: str, mode: str = "deny",
                         resources: Sequence[Mapping[str, Sequence[str]]] = ALL_RESOURCES,
                         namespace_selector: Mapping[str, Any] | None = None,
                         cluster_object_selector: Mapping[str, Any] | None = None,
                         namespace_mode_label: str = "") -> list[dict[str, Any]]:
    """The policy's bindings: namespaced objects against their namespace's lock Leases, cluster-scoped
    ones against the lock namespace's; plus, under a mode weaker than deny, one per stricter mode for
    namespaces whose ``namespace_mode_label`` asks for it (a label makes enforcement stricter, never weaker)."""
    params = {"selector": {"matchExpressions": [{"key": txn_label, "operator": "Exists"}]},
              "parameterNotFoundAction": "Allow"}
    namespaced_rules = _create_rules(resources, "Namespaced") + scale_rules("Namespaced")
    selector = dict(namespace_selector or {})
    bindings = [
        _binding(f"{policy}.namespaced", policy, VALIDATION_ACTIONS[mode], params,
                 {"namespaceSelector": selector, "resourceRules": namespaced_rules}),
        _binding(f"{policy}.cluster", policy, VALIDATION_ACTIONS[mode], {**params, "namespace": lock_namespace},
                 {"objectSelector": dict(cluster_object_selector or {}),
                  "resourceRules": _create_rules(resources, "Cluster")}),
        # Probes are refused whatever the mode (warn and dryrun would only warn or audit them):
        # acquire must see whether the policy has the Lease. Only probes: no Lease is a lock's target.
        _binding(f"{policy}.probe", policy, ["Deny"], params,
                 {"namespaceSelector": selector, "resourceRules": [_rule([LEASE_GROUP], ["leases"], ["CREATE"],
                                                                         "Namespaced")]}),
    ]
    for stricter in _STRICTNESS[_STRICTNESS.index(mode) + 1:] if namespace_mode_label else ():
        labelled = {**selector, "matchExpressions": [*(selector.get("matchExpressions") or []),
                                                     {"key": namespace_mode_label, "operator": "In",
                                                      "values": [stricter]}]}
        bindings.append(_binding(f"{policy}.{stricter}", policy, VALIDATION_ACTIONS[stricter], params,
                                 {"namespaceSelector": labelled, "resourceRules": namespaced_rules}))
    return bindings


def probe_policy(name: str) -> dict[str, Any]:
    """A policy that warns on every probe where reservations are judged (a namespace some binding selects).

    Acquire tells "the reservation is not visible yet" (this warning, no
    refusal: try again) from "nothing judges reservations here" (neither).
    """
    spec = {"failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [_rule([LEASE_GROUP], ["leases"], ["CREATE"], "Namespaced")]},
            "validations": [{"expression": f"!{cel.has_label('object', PROBE_LABEL)}",
                             "messageExpression": "'" + PROBE_WARNING + " ' + request.namespace"}]}
    return {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}, "spec": spec}


def keepalive_policies(name: str) -> list[dict[str, Any]]:
    """A policy and binding that name the Lease paramKind and judge nothing, never deleted.

    kube-apiserver (1.35, kubernetes#130887) tears down its informer for a
    built-in paramKind for good as soon as no binding names that paramKind,
    and later policies then read a frozen copy of the Leases: reinstalling the
    chart (or replacing its bindings) would leave reservations stale until the
    API server restarts. While this binding exists the informer lives. The
    chart keeps it on uninstall (``helm.sh/resource-policy: keep``).
    """
    never = {"matchLabels": {"leasegate.io/never": "matches"}}
    spec = {"failurePolicy": "Ignore", "paramKind": {"apiVersion": LEASE_API_VERSION, "kind": "Lease"},
            "matchConstraints": {"resourceRules": [_rule([LEASE_GROUP], ["leases"], ["CREATE"], "Namespaced")]},
            "validations": [{"expression": "true"}]}
    policy = {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}, "spec": spec}
    binding = _binding(name, name, ["Audit"], {"selector": never, "parameterNotFoundAction": "Allow"},
                       {"namespaceSelector": never, "objectSelector": never})
    return [policy, binding]


def admission_policies(name: str, *, lock_namespace: str, txn_label: str, txn_annotation: str = "leasegate.io/transaction",
                       mode: str = "deny", resources: Sequence[Mapping[str, Sequence[str]]] = ALL_RESOURCES,
                       namespace_selector: Mapping[str, Any] | None = None,
                       cluster_object_selector: Mapping[str, Any] | None = None, namespace_mode_label: str = "",
                       match_conditions: Sequence[Mapping[str, str]] = ()) -> list[dict[str, Any]]:
    """Every policy and binding of an installation named ``name`` (the chart renders the same)."""
    probes = f"probes.{name}"
    return [
        reservation_policy(name, txn_annotation=txn_annotation, resources=resources, match_conditions=match_conditions),
        *reservation_bindings(name, lock_namespace=lock_namespace, txn_label=txn_label, mode=mode, resources=resources,
                              namespace_selector=namespace_selector, cluster_object_selector=cluster_object_selector,
                              namespace_mode_label=namespace_mode_label),
        probe_policy(probes),
        _binding(probes, probes, ["Warn"], {}, {"namespaceSelector": dict(namespace_selector or {})}),
    ]


def _binding(name: str, policy: str, actions: list[str], params: Mapping[str, Any],
             match: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"policyName": policy, "validationActions": list(actions),
                            "matchResources": {"matchPolicy": "Equivalent", **match}}
    if params:
        spec["paramRef"] = dict(params)
    return {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}, "spec": spec}
