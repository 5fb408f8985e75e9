"""webhook.policy: the reservation policy, its bindings, the probe and keepalive policies (structure only).

What the API server does with them is proved against the real kube-apiserver
(tests/integration/webhook/test_fence.py, test_outage.py); here: which
requests they can ever match, and which actions each mode binds.
"""

from __future__ import annotations

from typing import Any

import pytest

from webhook.policy import admission_policies, keepalive_policies, reservation_bindings, reservation_policy

LABEL = "leasegate.io/transaction"


def excluded(policy: dict[str, Any]) -> set[tuple[str, str]]:
    rules = policy["spec"]["matchConstraints"]["excludeResourceRules"]
    return {(group, resource) for rule in rules for group in rule["apiGroups"] for resource in rule["resources"]}


@pytest.mark.parametrize("group, resource", [
    ("", "events"),
    ("events.k8s.io", "events"),
    ("openreports.io", "reports"),  # the ledger's own: a reserved name would silence a namespace's ledger
    ("openreports.io", "clusterreports"),
    ("authorization.k8s.io", "*"),  # reviews: created on every request path, never locked
    ("authentication.k8s.io", "*"),
])
def test_what_a_lock_can_never_reserve(group: str, resource: str) -> None:
    assert (group, resource) in excluded(reservation_policy("locks.leasegate.io"))


@pytest.mark.parametrize("mode, namespace_mode_label, expected", [
    ("deny", "", {"namespaced": ["Deny"], "cluster": ["Deny"], "probe": ["Deny"]}),
    ("warn", "", {"namespaced": ["Warn"], "cluster": ["Warn"], "probe": ["Deny"]}),
    ("dryrun", "", {"namespaced": ["Audit"], "cluster": ["Audit"], "probe": ["Deny"]}),
    # A namespace label makes enforcement stricter, never weaker: one binding per stricter mode.
    ("warn", "leasegate.io/enforcement",
     {"namespaced": ["Warn"], "cluster": ["Warn"], "probe": ["Deny"], "deny": ["Deny"]}),
    ("dryrun", "leasegate.io/enforcement",
     {"namespaced": ["Audit"], "cluster": ["Audit"], "probe": ["Deny"], "warn": ["Warn"], "deny": ["Deny"]}),
    ("deny", "leasegate.io/enforcement", {"namespaced": ["Deny"], "cluster": ["Deny"], "probe": ["Deny"]}),
])
def test_each_mode_binds_its_actions_and_probes_are_always_refused(
        mode: str, namespace_mode_label: str, expected: dict[str, list[str]]) -> None:
    bindings = reservation_bindings("p", lock_namespace="locks", txn_label=LABEL, mode=mode,
                                    namespace_mode_label=namespace_mode_label)
    actions = {b["metadata"]["name"].removeprefix("p."): b["spec"]["validationActions"] for b in bindings}
    assert actions == expected


def test_cluster_scoped_objects_are_judged_against_the_lock_namespace() -> None:
    by_name = {b["metadata"]["name"]: b["spec"] for b in
               reservation_bindings("p", lock_namespace="locks", txn_label=LABEL)}
    assert by_name["p.cluster"]["paramRef"]["namespace"] == "locks"
    assert "namespace" not in by_name["p.namespaced"]["paramRef"]  # the request's own namespace
    for spec in by_name.values():
        assert spec["paramRef"]["selector"] == {"matchExpressions": [{"key": LABEL, "operator": "Exists"}]}
        assert spec["paramRef"]["parameterNotFoundAction"] == "Allow"  # no lock, nothing reserved


def test_the_keepalive_names_the_lease_kind_and_judges_nothing() -> None:
    policy, binding = keepalive_policies("keepalive")
    assert policy["spec"]["paramKind"] == {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
    assert policy["spec"]["failurePolicy"] == "Ignore"
    assert binding["spec"]["validationActions"] == ["Audit"]
    never = binding["spec"]["matchResources"]
    assert never["namespaceSelector"] == never["objectSelector"] == {"matchLabels": {"leasegate.io/never": "matches"}}


def test_an_installation_is_one_policy_its_bindings_and_the_probe_policy() -> None:
    objects = admission_policies("locks.leasegate.io", lock_namespace="locks", txn_label=LABEL)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds == [
        ("ValidatingAdmissionPolicy", "locks.leasegate.io"),
        ("ValidatingAdmissionPolicyBinding", "locks.leasegate.io.namespaced"),
        ("ValidatingAdmissionPolicyBinding", "locks.leasegate.io.cluster"),
        ("ValidatingAdmissionPolicyBinding", "locks.leasegate.io.probe"),
        ("ValidatingAdmissionPolicy", "probes.locks.leasegate.io"),
        ("ValidatingAdmissionPolicyBinding", "probes.locks.leasegate.io"),
    ]
    assert all(o["spec"].get("failurePolicy", "Fail") == "Fail" for o in objects if o["kind"].endswith("Policy"))
