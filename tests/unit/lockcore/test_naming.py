"""Lease names: valid and collision-free for every valid key (property-based)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey, lease_name, lease_ref
from lockcore.settings import LockSettings, Profile

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
groups = st.one_of(st.just(""), st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda g: len(g) <= 253))
kinds = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,62}", fullmatch=True)
namespaces = st.one_of(st.just(""), label)
# Names: subdomains, labels, and the permissive path-segment names (RBAC allows ':' etc.).
names = st.one_of(
    label,
    st.lists(label, min_size=1, max_size=5).map(".".join).filter(lambda n: len(n) <= 253),
    st.text(st.characters(blacklist_characters="/%", blacklist_categories=("Cs",)), min_size=1, max_size=253)
    .filter(lambda n: n not in {".", ".."}),
)
keys = st.builds(ResourceKey, group=groups, kind=kinds, namespace=namespaces, name=names)
SETTINGS = LockSettings()


def identity(key: ResourceKey) -> tuple[str, str, str, str]:
    return (key.group, key.kind.lower(), key.namespace, key.name)


@settings(max_examples=400)
@given(keys)
def test_every_valid_key_has_a_valid_lease_name(key: ResourceKey) -> None:
    name = lease_name(key)
    assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), name


@settings(max_examples=400)
@given(keys, keys)
def test_distinct_keys_never_share_a_lease(a: ResourceKey, b: ResourceKey) -> None:
    if identity(a) != identity(b):
        assert lease_ref(a, SETTINGS) != lease_ref(b, SETTINGS)


@given(st.lists(keys, min_size=2, max_size=30))
def test_no_collisions_within_a_batch(batch: list[ResourceKey]) -> None:
    by_ref = {}
    for key in batch:
        by_ref.setdefault(lease_ref(key, SETTINGS), set()).add(identity(key))
    assert all(len(ids) == 1 for ids in by_ref.values())


def test_the_reference_collision_is_gone() -> None:
    # The reference's "ns a-b kind c" vs "ns a kind b-c": kinds cannot contain '-',
    # so the same ambiguity is shown with the dash moving between namespace and name.
    a = ResourceKey(group="", kind="C", namespace="a-b", name="x")
    b = ResourceKey(group="", kind="B", namespace="a", name="c-x")
    assert lease_name(a, Profile.JANUS) == lease_name(b, Profile.JANUS) == "janus-lock-a-b-c-x"
    assert lease_ref(a, SETTINGS) != lease_ref(b, SETTINGS)
    janus = LockSettings(profile=Profile.JANUS)
    # janus keeps each Lease in the object's namespace, so the refs differ although the names agree.
    assert lease_ref(a, janus) == LeaseRef("a-b", "janus-lock-a-b-c-x")
    assert lease_ref(b, janus) == LeaseRef("a", "janus-lock-a-b-c-x")


def test_janus_cluster_scoped_leases_are_named_with_their_namespace() -> None:
    # janus keeps a cluster-scoped object's Lease in its Transaction's namespace, named with it;
    # a lock client's lives in its lock namespace, named the same way.
    key = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "edit")
    assert lease_ref(key, LockSettings(profile=Profile.JANUS, lock_namespace="ops")) == LeaseRef(
        "ops", "janus-lock-ops-clusterrole-edit")
    assert lease_name(key, Profile.JANUS, "dev") == "janus-lock-dev-clusterrole-edit"
    with pytest.raises(InvalidKeyError, match="janus profile"):
        lease_name(ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "system:x"), Profile.JANUS, "ops")


def test_same_group_kinds_differing_in_case_share_a_lock() -> None:
    upper = ResourceKey("apps", "Deployment", "ns", "web")
    lower = ResourceKey("apps", "deployment", "ns", "web")
    assert lease_ref(upper, SETTINGS) == lease_ref(lower, SETTINGS)


def test_same_kind_in_different_groups_do_not() -> None:
    ours = ResourceKey("apps", "Deployment", "ns", "web")
    crd = ResourceKey("example.com", "Deployment", "ns", "web")
    assert lease_ref(ours, SETTINGS) != lease_ref(crd, SETTINGS)


def test_cluster_scoped_leases_live_in_the_lock_namespace() -> None:
    ref = lease_ref(ResourceKey("", "Namespace", "", "shop"), LockSettings(lock_namespace="locks"))
    assert ref.namespace == "locks" and ref.name == "lgc.namespace.shop"
