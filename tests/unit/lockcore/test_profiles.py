"""lockcore.profiles: the janus name scheme and holder record, table by table, plus properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockcore.kube import DNS_LABEL
from lockcore.profiles import PROFILES, HolderRecord, LockProfile, NameScheme, Profile

JANUS = LockProfile.of(Profile.JANUS)
SCHEME = NameScheme("janus-lock")
RECORD = HolderRecord("tx.janus.io", "v1alpha1", "transactions")


def test_janus_profile_is_the_operators_layout() -> None:
    # janus v0.2.3: internal/lock LeaseName and createLease; api/v1alpha1 Transaction.
    assert (JANUS.txn_label, JANUS.fences, JANUS.records_principal) == ("janus.io/transaction", False, False)
    assert JANUS.names == SCHEME and JANUS.holder_record == RECORD and JANUS.cluster_leases_anywhere
    own = LockProfile.of(Profile.LEASEGATE)
    assert own.names is None and own.holder_record is None and not own.cluster_leases_anywhere
    assert set(PROFILES) == set(Profile)


@pytest.mark.parametrize(("namespace", "kind", "name", "lease"), [
    ("shop", "ConfigMap", "web", "janus-lock-shop-configmap-web"),
    ("ops", "ClusterRole", "Edit", "janus-lock-ops-clusterrole-edit"),  # case folded, as janus does
    ("a-b", "C", "x", "janus-lock-a-b-c-x"),
])
def test_names(namespace: str, kind: str, name: str, lease: str) -> None:
    assert SCHEME.name(namespace, kind, name) == lease


@pytest.mark.parametrize(("namespace", "lease", "target"), [
    ("ops", "janus-lock-ops-clusterrole-edit", "clusterrole-edit"),
    ("ops", "janus-lock-ops-clusterrole-a-b", "clusterrole-a-b"),
    ("a", "janus-lock-a-b-c-x", "b-c-x"),  # in namespace a it is kind b's; in a-b it is kind c's
    ("a-b", "janus-lock-a-b-c-x", "c-x"),
    ("dev", "janus-lock-ops-clusterrole-edit", None),  # named for another namespace than its own
    ("ops", "lg.configmap.web", None),
    ("ops", "janus-lock-ops-", None),
    ("ops", "janus-lock-ops-configmap", None),  # no name part
    ("ops", "janus-lock-ops--x", None),
])
def test_target_of(namespace: str, lease: str, target: str | None) -> None:
    assert SCHEME.target_of(namespace, lease) == target


@given(namespace=st.from_regex(DNS_LABEL, fullmatch=True).filter(lambda n: len(n) <= 63),
       kind=st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,20}", fullmatch=True),
       name=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?", fullmatch=True))
def test_target_of_inverts_name_in_the_leases_namespace(namespace: str, kind: str, name: str) -> None:
    assert SCHEME.target_of(namespace, SCHEME.name(namespace, kind, name)) == SCHEME.target(kind, name)


@pytest.mark.parametrize(("record", "username"), [
    ({"spec": {"serviceAccountName": "runner"}}, "system:serviceaccount:shop:runner"),
    ({"spec": {"serviceAccountName": ""}}, ""),
    ({"spec": {"serviceAccountName": "a:b"}}, ""),  # not an account name: nobody
    ({"spec": {"serviceAccountName": 7}}, ""),
    ({"spec": "x"}, ""),
    ({}, ""),
])
def test_holder_record_username(record: dict[str, Any], username: str) -> None:
    assert RECORD.username("shop", record) == username


def test_holder_record_path_and_candidates() -> None:
    assert RECORD.path("shop", "t42") == "/apis/tx.janus.io/v1alpha1/namespaces/shop/transactions/t42"
    assert RECORD.may_be("system:serviceaccount:shop:runner", "shop")
    assert not RECORD.may_be("system:serviceaccount:shop-2:runner", "shop")
    assert not RECORD.may_be("alice", "shop")
