"""Matching admission rules and selectors as the API server does (lockcore.coverage), no cluster."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockcore.coverage import Write, covering_webhooks, rule_matches, selector_matches, webhook_covers

CM = Write(group="", version="v1", resource="configmaps", namespaced=True)
DEPLOY = Write(group="apps", version="v1", resource="deployments", namespaced=True)
DEPLOY_BETA = Write(group="apps", version="v1beta2", resource="deployments", namespaced=True)
NS = Write(group="", version="v1", resource="namespaces", namespaced=False)
CRB = Write(group="rbac.authorization.k8s.io", version="v1", resource="clusterrolebindings", namespaced=False)


def rule(resources: list[str], groups: list[str] | None = None, *, operations: list[str] | None = None,
         versions: list[str] | None = None, scope: str | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {"operations": ["UPDATE"] if operations is None else operations, "apiGroups": groups if groups is not None else [""],
                            "apiVersions": versions or ["v1"], "resources": resources}
    if scope:
        made["scope"] = scope
    return made


@pytest.mark.parametrize(("the_rule", "write", "exact", "matches"), [
    (rule(["configmaps"]), CM, False, True),
    (rule(["secrets"]), CM, False, False),                                   # another resource
    (rule(["configmaps"], ["apps"]), CM, False, False),                      # another group
    (rule(["*"], ["*"]), DEPLOY, False, True),
    (rule(["*/*"], ["*"]), DEPLOY, False, True),                             # everything incl. subresources
    (rule(["deployments/*"], ["apps"]), DEPLOY, False, False),               # subresources only
    (rule(["*/status"], ["*"]), DEPLOY, False, False),
    (rule(["deployments", "deployments/scale"], ["apps"]), DEPLOY, False, True),
    (rule(["configmaps"], operations=["CREATE", "DELETE"]), CM, False, False),
    (rule(["configmaps"], operations=["*"]), CM, False, True),
    (rule(["configmaps"], operations=[]), CM, False, False),
    (rule([]), CM, False, False),
    (rule(["deployments"], ["apps"]), DEPLOY_BETA, False, True),             # Equivalent: any version
    (rule(["deployments"], ["apps"]), DEPLOY_BETA, True, False),             # Exact: this version only
    (rule(["deployments"], ["apps"], versions=["*"]), DEPLOY_BETA, True, True),
    (rule(["configmaps"], scope="Namespaced"), CM, False, True),
    (rule(["configmaps"], scope="Cluster"), CM, False, False),
    (rule(["namespaces"], scope="Namespaced"), NS, False, False),
    (rule(["namespaces"], scope="Cluster"), NS, False, True),
    (rule(["namespaces"], scope="*"), NS, False, True),
])
def test_rule_matches(the_rule: dict[str, Any], write: Write, exact: bool, matches: bool) -> None:
    assert rule_matches(the_rule, write, exact=exact) is matches


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    (None, {"a": "1"}, True),
    ({}, {}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchLabels": {"a": "1"}}, {}, False),
    ({"matchLabels": {"a": "1"}}, None, True),                              # labels unknown: may match
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": ""}, False),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {}, True),  # unknown operator
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
])
def test_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None, matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


# The chart's shape: every namespace but the excluded ones, objects not opted out.
CHART_HOOK = {
    "name": "locks.leasegate.io", "rules": [rule(["configmaps", "namespaces"], scope="*")],
    "namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "leasegate-system"]}]},
    "objectSelector": {"matchExpressions": [{"key": "leasegate.io/ignore", "operator": "DoesNotExist"}]},
}
SHOP = {"kubernetes.io/metadata.name": "shop"}
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}


@pytest.mark.parametrize(("write", "namespace_labels", "object_labels", "covered"), [
    (CM, SHOP, {}, True),
    (CM, KUBE_SYSTEM, {}, False),                                           # namespace excluded
    (CM, None, {}, True),                                                   # namespace unreadable: may match
    (CM, SHOP, {"leasegate.io/ignore": "true"}, False),                     # object opted out
    (CM, SHOP, None, True),                                                 # object absent/unreadable
    (NS, None, KUBE_SYSTEM, False),                                         # a Namespace: its own labels
    (NS, KUBE_SYSTEM, SHOP, True),
    (DEPLOY, SHOP, {}, False),                                              # not in the rules
])
def test_webhook_covers(write: Write, namespace_labels: dict[str, str] | None,
                        object_labels: dict[str, str] | None, covered: bool) -> None:
    assert webhook_covers(CHART_HOOK, write, namespace_labels=namespace_labels,
                          object_labels=object_labels) is covered


def test_other_cluster_scoped_objects_ignore_the_namespace_selector() -> None:
    hook = {**CHART_HOOK, "rules": [rule(["clusterrolebindings"], ["rbac.authorization.k8s.io"])],
            "namespaceSelector": {"matchLabels": {"never": "x"}}}
    assert webhook_covers(hook, CRB, namespace_labels=None, object_labels={})


def test_covering_webhooks_names_configuration_and_webhook() -> None:
    leases_only = {"name": "leases.leasegate.io", "rules": [rule(["leases"], ["coordination.k8s.io"])]}
    configs = [{"metadata": {"name": "leasegate"}, "webhooks": [leases_only, CHART_HOOK]},
               {"metadata": {"name": "other"}, "webhooks": [leases_only]}, {"metadata": {"name": "empty"}}]
    assert covering_webhooks(configs, CM, namespace_labels=SHOP) == ["leasegate/locks.leasegate.io"]
    assert covering_webhooks(configs, DEPLOY, namespace_labels=SHOP) == []
    assert covering_webhooks([], CM) == []


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-", min_size=1, max_size=20)
writes = st.builds(Write, group=st.one_of(st.just(""), names), version=st.sampled_from(["v1", "v1beta1", "v2"]),
                   resource=names, namespaced=st.booleans(),
                   operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]))


@given(writes)
def test_a_wildcard_rule_matches_every_write(write: Write) -> None:
    wildcard = rule(["*"], ["*"], operations=["*"], versions=["*"])
    assert rule_matches(wildcard, write, exact=True) and rule_matches({**wildcard, "resources": ["*/*"]}, write)


@given(writes, st.lists(names, max_size=4))
def test_a_rule_matches_only_the_resources_it_lists(write: Write, resources: list[str]) -> None:
    listed = rule(resources, ["*"], operations=["*"], versions=["*"])
    assert rule_matches(listed, write) is (write.resource in resources)


@given(st.dictionaries(names, names, max_size=4), st.dictionaries(names, names, max_size=4))
def test_match_labels_is_a_subset_test(wanted: dict[str, str], labels: dict[str, str]) -> None:
    assert selector_matches({"matchLabels": wanted}, labels) is (wanted.items() <= labels.items())
