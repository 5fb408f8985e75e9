"""webhook.decision: every rule of decide (objects' writes), trusts_cache, holder_for and lease_target,
table by table, plus property tests. Lock Leases' own writes: test_lease_writes.py; modes: test_outcome.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lockcore.kube import LOCKED_LABEL
from lockcore.lease import LeaseState
from lockcore.members import Members
from lockcore.naming import LeaseRef
from lockcore.settings import LockSettings
from tests.support.decisions import (
    AS_RUNNER,
    BOUND,
    CREW,
    DEPLOYER,
    HELD,
    JANUS,
    JANUS_HELD,
    NOW,
    POLICY,
    RUNNER,
    TXN,
    Case,
    assert_rule,
    jreq,
    judge,
    lease,
    lease_req,
    req,
)
from webhook.decision import decide, holder_for, lease_for, lease_target, strictest, trusts_cache
from webhook.outcome import (
    ABSENT,
    NOT_LOOKED_UP,
    HolderIdentity,
    HolderLookupResult,
    HolderRef,
    LeaseLookupResult,
    LookupFailed,
    Reason,
)
from webhook.review import AdmissionRequest
from webhook.settings import DecisionPolicy, Enforcement, EnforcementMode, FailurePolicy

ALLOW_ON_FAILURE = Enforcement(lookup_failure_policy=FailurePolicy.ALLOW)

CASES = [
    # -- no lock / expired --------------------------------------------------
    Case("no lease", req(), ABSENT, True, Reason.UNLOCKED),
    Case("expired past skew", req(), lease(age=63), True, Reason.EXPIRED),
    Case("expired but inside skew margin is still live", req(), lease(age=61), False,
         Reason.NOT_IN_TRANSACTION),
    Case("lease without holder locks nothing", req(), lease(holder=""), True, Reason.EXPIRED),
    Case("lease without renew time locks nothing", req(),
         LeaseState(holder="t1", renew_time=None, duration_seconds=60), True, Reason.EXPIRED),
    # -- proof by annotation -----------------------------------------------
    Case("update sets holder annotation", req(new="t1"), HELD, True, Reason.IN_TRANSACTION),
    Case("update sets it over another txn's stamp", req(new="t1", old="t0"), HELD, True,
         Reason.IN_TRANSACTION),
    Case("create with holder annotation", req("CREATE", new="t1"), HELD, True, Reason.IN_TRANSACTION),
    Case("update without annotation", req(), HELD, False, Reason.NOT_IN_TRANSACTION),
    Case("update declaring another txn", req(new="t2"), HELD, False, Reason.OTHER_TRANSACTION),
    Case("create without annotation", req("CREATE"), HELD, False, Reason.NOT_IN_TRANSACTION),
    Case("update removing the annotation", req(old="t1"), HELD, False, Reason.NOT_IN_TRANSACTION),
    # -- carried-over annotation ------------------------------------------
    Case("second user carries holder's annotation", req(new="t1", old="t1", user="bob"), HELD,
         False, Reason.CARRIED_OVER),
    Case("principal carries own annotation", req(new="t1", old="t1", user="alice"), HELD, True,
         Reason.PRINCIPAL_CARRIED_OVER),
    Case("carried over, no principal recorded", req(new="t1", old="t1", user="alice"),
         lease(principal=""), False, Reason.CARRIED_OVER),
    # -- delete: judged on the stored object -------------------------------
    Case("delete of stamped object by principal", req("DELETE", old="t1", user="alice"), HELD,
         True, Reason.PRINCIPAL_CARRIED_OVER),
    Case("delete of stamped object by another user", req("DELETE", old="t1"), HELD, False,
         Reason.CARRIED_OVER),
    Case("delete of unstamped object", req("DELETE"), HELD, False, Reason.NOT_IN_TRANSACTION),
    Case("delete of stamped object, janus profile (no principal recorded)", req("DELETE", old="t1"),
         lease(principal=""), True, Reason.IN_TRANSACTION, JANUS),
    Case("delete of stamped object, no principal recorded, leasegate profile", req("DELETE", old="t1"),
         lease(principal=""), False, Reason.CARRIED_OVER),
    Case("delete ignores the (absent) new object", req("DELETE", new="t1"), HELD, False,
         Reason.NOT_IN_TRANSACTION),
    # -- janus: proof by the identity the holding Transaction names ------------------
    Case("janus Update step (field manager 'manager', no annotation) as the Transaction's SA",
         jreq(user=RUNNER, manager="manager"), JANUS_HELD, True, Reason.HOLDER_IDENTITY, JANUS, AS_RUNNER),
    Case("janus Delete step as the Transaction's SA", jreq("DELETE", user=RUNNER), JANUS_HELD, True,
         Reason.HOLDER_IDENTITY, JANUS, AS_RUNNER),
    Case("janus Create step (apply as janus-t1) as the Transaction's SA",
         jreq("CREATE", user=RUNNER, manager="janus-t1"), JANUS_HELD, True, Reason.HOLDER_IDENTITY, JANUS,
         AS_RUNNER),
    Case("janus Patch/rollback step (apply as janus-t1) as the Transaction's SA",
         jreq(user=RUNNER, manager="janus-t1"), JANUS_HELD, True, Reason.HOLDER_IDENTITY, JANUS, AS_RUNNER),
    Case("another user claiming the janus field manager", jreq(manager="janus-t1"), JANUS_HELD, False,
         Reason.NOT_IN_TRANSACTION, JANUS),
    Case("another user claiming it, with the record read", jreq(manager="janus-t1"), JANUS_HELD, False,
         Reason.NOT_IN_TRANSACTION, JANUS, AS_RUNNER),
    Case("another SA of the namespace", jreq(user="system:serviceaccount:shop:other", manager="janus-t1"),
         JANUS_HELD, False, Reason.NOT_IN_TRANSACTION, JANUS, AS_RUNNER),
    Case("another user deleting", jreq("DELETE"), JANUS_HELD, False, Reason.NOT_IN_TRANSACTION, JANUS, AS_RUNNER),
    Case("the Transaction is gone (no record): its SA proves nothing", jreq(user=RUNNER), JANUS_HELD, False,
         Reason.NOT_IN_TRANSACTION, JANUS, HolderIdentity()),
    Case("the record cannot be read: a refusal becomes a failed lookup", jreq(user=RUNNER), JANUS_HELD, False,
         Reason.LOOKUP_FAILED, JANUS, LookupFailed("timeout")),
    Case("the record cannot be read, but the annotation proves it", jreq(user=RUNNER, new="t1"), JANUS_HELD,
         True, Reason.IN_TRANSACTION, JANUS, LookupFailed("timeout")),
    Case("janus: the annotation set by the write still proves it", jreq(new="t1"), JANUS_HELD, True,
         Reason.IN_TRANSACTION, JANUS),
    Case("janus: expired lock", jreq(), replace(JANUS_HELD, renew_time=NOW - timedelta(seconds=63)), True,
         Reason.EXPIRED, JANUS),
    # -- exemptions -------------------------------------------------------
    Case("exempt user (GC)", req(user="system:serviceaccount:kube-system:generic-garbage-collector"),
         HELD, True, Reason.EXEMPT_USER),
    Case("exempt namespace controller delete",
         req("DELETE", user="system:serviceaccount:kube-system:namespace-controller"), HELD, True,
         Reason.EXEMPT_USER),
    Case("exempt group", req(groups=("system:nodes",)), HELD, True, Reason.EXEMPT_GROUP),
    Case("exempt namespace", req(namespace="kube-system"), HELD, True, Reason.EXEMPT_NAMESPACE),
    Case("custom exempt user", req(user="ci-bot"), HELD, True, Reason.EXEMPT_USER,
         replace(POLICY, exempt_users=("ci-bot",))),
    Case("connect is not a write", req("CONNECT"), HELD, True, Reason.CONNECT),
    Case("exempt user may delete a live lock Lease (namespace deletion)",
         lease_req("DELETE", user="system:serviceaccount:kube-system:namespace-controller"), ABSENT, True,
         Reason.EXEMPT_USER),
    # -- shapes ----------------------------------------------------------
    Case("generateName create has no name yet", req("CREATE", name=""), HELD, True, Reason.NO_NAME),
    Case("finalizer removal on a deleting object", req(finalizers_only=True), HELD, True,
         Reason.FINALIZER_REMOVAL),
    Case("status write changing only status", req(sub="status", status_only=True), HELD, True,
         Reason.STATUS_SUBRESOURCE),
    Case("status write changing metadata is judged", req(sub="status"), HELD, False,
         Reason.NOT_IN_TRANSACTION),
    Case("status write by the holder with proof", req(sub="status", new="t1"), HELD, True,
         Reason.IN_TRANSACTION),
    Case("scale subresource judged on the parent",
         req(group="autoscaling", kind="Scale", resource="deployments", resource_group="apps",
             sub="scale", marker=None), HELD, False, Reason.NOT_IN_TRANSACTION),
    Case("scale by the lock's principal", req(group="autoscaling", kind="Scale", resource="deployments",
                                              resource_group="apps", sub="scale", marker=None, user="alice"),
         HELD, True, Reason.PRINCIPAL_SCALE),
    Case("scale of an unknown parent is unlockable",
         req(group="autoscaling", kind="Scale", resource="widgets", resource_group="example.com",
             sub="scale"), HELD, True, Reason.UNLOCKABLE),
    Case("cluster-scoped object locked", req(namespace="", kind="Namespace", resource="namespaces",
                                             name="shop"), HELD, False, Reason.NOT_IN_TRANSACTION),
    Case("cluster-scoped object with proof", req(namespace="", kind="ClusterRole", group="rbac.authorization.k8s.io",
                                                 resource="clusterroles", name="system:x", new="t1"),
         HELD, True, Reason.IN_TRANSACTION),
    Case("name no lock can have", req(name="a/b"), HELD, True, Reason.UNLOCKABLE),
    # -- lookup failure ----------------------------------------------------
    Case("lookup failure, policy deny", req(), LookupFailed("timeout"), False, Reason.LOOKUP_FAILED),
    Case("lookup failure, policy allow", req(), LookupFailed("timeout"), True, Reason.LOOKUP_FAILED,
         enforcement=ALLOW_ON_FAILURE),
    Case("lookup failure irrelevant when exempt", req(user="system:kube-scheduler"),
         LookupFailed("timeout"), True, Reason.EXEMPT_USER),
    # -- the marker (fence) --------------------------------------------------
    Case("holder removing the marker", req(new="t1", new_marker=None, user="alice"), HELD, False,
         Reason.MARKER_MISSING),
    Case("holder changing the marker", req(new="t1", new_marker="t2", user="alice"), HELD, False,
         Reason.MARKER_MISSING),
    Case("create of a locked name without marker", req("CREATE", new="t1", marker=None), HELD, False,
         Reason.MARKER_MISSING),
    Case("create of a locked name with marker and proof", req("CREATE", new="t1"), HELD, True,
         Reason.IN_TRANSACTION),
    Case("stamp by the principal", req(marker=None, new_marker="t1", user="alice"), HELD, True,
         Reason.PRINCIPAL_STAMP),
    Case("stamp of a takeover", req(marker="t0", new_marker="t1", user="alice"), HELD, True,
         Reason.PRINCIPAL_STAMP),
    Case("stamp by another user", req(marker=None, new_marker="t1", user="bob"), HELD, False,
         Reason.NOT_IN_TRANSACTION),
    Case("stale marker removed with no lease", req(new_marker=None), ABSENT, True, Reason.UNLOCKED),
    Case("stale marker removed, lease expired", req(new_marker=None), lease(age=63), True, Reason.EXPIRED),
    Case("marker not required under janus", req("CREATE", new="t1", marker=None), HELD, True,
         Reason.IN_TRANSACTION, JANUS),
    Case("delete needs no new marker", req("DELETE", old="t1", user="alice"), HELD, True,
         Reason.PRINCIPAL_CARRIED_OVER),
    # -- identity-bound locks (members) ---------------------------------------
    Case("member-bound: non-member sets the holder's annotation", req(new="t1"), BOUND, False,
         Reason.NOT_A_MEMBER),
    Case("member-bound: non-member carries the annotation over", req(new="t1", old="t1"), BOUND, False,
         Reason.NOT_A_MEMBER),
    Case("member-bound: non-member deletes", req("DELETE", old="t1"), BOUND, False, Reason.NOT_A_MEMBER),
    Case("member-bound: non-member scales", req(group="autoscaling", kind="Scale", resource="deployments",
                                                resource_group="apps", sub="scale", marker=None), BOUND, False,
         Reason.NOT_A_MEMBER),
    Case("member-bound: non-member creates the locked name", req("CREATE", new="t1"), BOUND, False,
         Reason.NOT_A_MEMBER),
    Case("member-bound: a holder identity is no membership", req(new="t1", user=RUNNER), BOUND,
         False, Reason.NOT_A_MEMBER, JANUS, AS_RUNNER),
    Case("member-bound: member user sets the annotation", req(new="t1", user="alice"), BOUND, True,
         Reason.IN_TRANSACTION),
    Case("member-bound: member group's user sets the annotation", req(new="t1", groups=("sre",)), BOUND, True,
         Reason.IN_TRANSACTION),
    Case("member-bound: member service account sets the annotation", req(new="t1", user=DEPLOYER), BOUND, True,
         Reason.IN_TRANSACTION),
    Case("member-bound: a member's carried-over annotation counts", req(new="t1", old="t1", groups=("sre",)),
         BOUND, True, Reason.MEMBER_CARRIED_OVER),
    Case("member-bound: member without the annotation", req(groups=("sre",)), BOUND, False,
         Reason.NOT_IN_TRANSACTION),
    Case("member-bound: member declaring another txn", req(new="t2", user=DEPLOYER), BOUND, False,
         Reason.OTHER_TRANSACTION),
    Case("member-bound: member deletes without annotation", req("DELETE", groups=("sre",)), BOUND, True,
         Reason.MEMBER_DELETE),
    Case("member-bound: member scales", req(group="autoscaling", kind="Scale", resource="deployments",
                                            resource_group="apps", sub="scale", marker=None, user=DEPLOYER),
         BOUND, True, Reason.MEMBER_SCALE),
    Case("member-bound: principal's stamp", req(marker=None, new_marker="t1", user="alice"), BOUND, True,
         Reason.PRINCIPAL_STAMP),
    Case("member-bound: a member still keeps the marker", req(new="t1", new_marker=None, groups=("sre",)), BOUND,
         False, Reason.MARKER_MISSING),
    Case("member-bound: unreadable members admit nobody, the principal neither", req(new="t1", user="alice"),
         lease(members=Members.unreadable()), False, Reason.NOT_A_MEMBER),
    Case("member-bound: expired locks nothing", req(), lease(members=CREW, age=63), True, Reason.EXPIRED),
    Case("member-bound: exempt users still pass", req(groups=("system:nodes",)), BOUND, True, Reason.EXEMPT_GROUP),
    # -- custom annotation key ---------------------------------------------
    Case("custom annotation key is the one read", req(new="t1"), HELD, False,
         Reason.NOT_IN_TRANSACTION, replace(POLICY, lock=LockSettings(txn_annotation="example.com/txn"))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(case: Case) -> None:
    assert_rule(case)


def test_lease_location_matches_lockcore() -> None:
    assert lease_for(req(), POLICY) == LeaseRef("shop", "lg.configmap.cfg")
    cluster = req(namespace="", kind="Namespace", resource="namespaces", name="shop")
    assert lease_for(cluster, POLICY) == LeaseRef("leasegate-system", "lgc.namespace.shop")
    # The API server sets request.namespace of a Namespace to its own name.
    namespace_obj = req(namespace="shop", kind="Namespace", resource="namespaces", name="shop")
    assert lease_for(namespace_obj, POLICY) == LeaseRef("leasegate-system", "lgc.namespace.shop")
    scale = req(group="autoscaling", kind="Scale", resource="deployments", resource_group="apps", sub="scale",
                name="web")
    assert lease_for(scale, POLICY) == LeaseRef("shop", "lg.deployment.web.apps")


def test_deny_message_is_actionable() -> None:
    verdict = judge(req(), HELD)
    assert (verdict.code, verdict.status_reason) == (403, "Forbidden")
    assert verdict.would_deny and verdict.decision == "deny"
    for part in ("configmap/cfg -n shop", "'t1'", "shop/lg.configmap.cfg", "expires in 50s",
                 "leasegate.io/transaction=t1"):
        assert part in verdict.message
    carried = judge(req(new="t1", old="t1"), HELD)
    assert "carried over" in carried.message and "'alice'" in carried.message
    unmarked = judge(req(new="t1", new_marker=None, user="alice"), HELD)
    assert f"without label {LOCKED_LABEL}=t1" in unmarked.message
    scale = judge(req(group="autoscaling", kind="Scale", resource="deployments", resource_group="apps",
                      sub="scale", marker=None), HELD)
    assert "only user 'alice' who acquired the lock may scale it" in scale.message


def test_a_non_member_is_told_the_lock_is_identity_bound_but_not_who_its_members_are() -> None:
    for refused in (judge(req(new="t1", old="t1"), BOUND), judge(req("DELETE", old="t1"), BOUND)):
        assert refused.reason is Reason.NOT_A_MEMBER and refused.code == 403
        for part in ("configmap/cfg -n shop is locked by transaction 't1'", "identity-bound",
                     "user:bob is not one of its members",
                     "`kubectl lock members add configmap/cfg -n shop --txn t1 --member user:bob`"):
            assert part in refused.message, refused.message
        assert not any(name in refused.message for name in ("alice", "sre", "deployer")), refused.message
    scale = judge(req(group="autoscaling", kind="Scale", resource="deployments", resource_group="apps",
                      sub="scale", marker=None, name="web", user=DEPLOYER), lease(members=Members.of(["user:x"])))
    assert "--member sa:shop:deployer" in scale.message and "deployment.apps/web -n shop" in scale.message
    shown = judge(req(new="t1"), BOUND, replace(POLICY, disclose_members=True)).message
    assert "(members: group:sre, sa:shop:deployer, user:alice)" in shown


def test_dry_run_is_judged_the_same() -> None:
    wet = judge(req(), HELD)
    dry = judge(replace(req(), dry_run=True), HELD)
    assert (wet.allowed, wet.reason, wet.message) == (dry.allowed, dry.reason, dry.message)


# -- property: total and well-formed ------------------------------------------------

_text = st.text(max_size=12)
_members = st.sampled_from([None, CREW, Members.unreadable(), Members.of(["group:developers"])])
_lease_states = st.builds(
    LeaseState, holder=st.sampled_from(["", "t1", "t2"]), renew_time=st.just(NOW),
    duration_seconds=st.integers(0, 100), principal=st.sampled_from(["", "alice"]),
    labels=st.dictionaries(st.sampled_from([TXN, "x"]), st.just("t1")), members=_members)
_requests = st.builds(
    AdmissionRequest,
    uid=st.text(min_size=1, max_size=8),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]),
    group=st.sampled_from(["", "apps", "coordination.k8s.io", "autoscaling", "Bad Group"]) | _text,
    version=_text,
    kind=st.sampled_from(["ConfigMap", "Lease", "Scale", "Namespace", ""]) | _text,
    resource=st.sampled_from(["configmaps", "leases", "deployments"]) | _text,
    resource_group=st.sampled_from(["", "apps", "coordination.k8s.io"]) | _text,
    sub_resource=st.sampled_from(["", "status", "scale", "exec"]),
    namespace=st.sampled_from(["", "shop", "kube-system", "UPPER"]) | _text,
    name=st.sampled_from(["", "cfg", "a.b", "x" * 300]) | st.text(max_size=30),
    username=st.sampled_from(["alice", "bob", ""]),
    groups=st.tuples(st.sampled_from(["developers", "system:nodes"])),
    dry_run=st.booleans(),
    new_annotations=st.dictionaries(st.sampled_from([TXN, "x"]), st.sampled_from(["t1", "t2", ""])),
    old_annotations=st.dictionaries(st.sampled_from([TXN, "x"]), st.sampled_from(["t1", "t2", ""])),
    field_manager=st.sampled_from(["", "janus-t1", "kubectl"]),
    finalizer_removal_only=st.booleans(),
    new_labels=st.dictionaries(st.sampled_from([LOCKED_LABEL, "x"]), st.sampled_from(["t1", "t2", ""])),
    old_labels=st.dictionaries(st.sampled_from([LOCKED_LABEL, "x"]), st.sampled_from(["t1", "t2", ""])),
    status_only=st.booleans(),
    old_lease=st.none() | _lease_states,
    new_lease=st.none() | _lease_states,
)
_leases = st.one_of(
    st.just(ABSENT),
    st.builds(LookupFailed, error=_text),
    st.builds(
        LeaseState,
        holder=st.sampled_from(["", "t1", "t2"]),
        renew_time=st.none() | st.datetimes(timezones=st.just(timezone.utc)),
        duration_seconds=st.none() | st.integers(0, 10**6),
        principal=st.sampled_from(["", "alice", "bob"]),
        members=_members,
    ),
)

_holders = st.one_of(st.just(NOT_LOOKED_UP), st.builds(HolderIdentity, st.sampled_from(["", RUNNER, "alice"])),
                     st.builds(LookupFailed, error=_text))


@hsettings(max_examples=2000)
@given(request=_requests, found=_leases, mode=st.sampled_from(list(EnforcementMode)),
       policy=st.sampled_from(list(FailurePolicy)), janus=st.booleans(), required=st.booleans(),
       holder=_holders)
def test_decide_is_total_and_well_formed(request: AdmissionRequest, found: LeaseLookupResult,
                                         mode: EnforcementMode, policy: FailurePolicy, janus: bool,
                                         required: bool, holder: HolderLookupResult) -> None:
    config = replace(JANUS if janus else POLICY, require_members=required)
    verdict = judge(request, found, config, Enforcement(mode=mode, lookup_failure_policy=policy), holder=holder)
    assert isinstance(verdict.reason, Reason)
    if verdict.allowed:
        assert verdict.code == 200
    else:
        assert mode is EnforcementMode.DENY and verdict.code in (403, 503) and verdict.message
        assert verdict.would_deny
    if verdict.reason.blocks:
        assert verdict.would_deny and verdict.holder
    if mode is not EnforcementMode.DENY:
        assert verdict.allowed
    assert verdict.decision in {"allow", "deny", "warn", "dryrun"}


# -- when a cache may decide ----------------------------------------------------

CACHE_CASES = [
    ("marked by the holder the cache shows live", req(), HELD, True),
    ("delete of an object marked by the cached holder", req("DELETE"), HELD, True),
    ("unmarked object (no lock can be)", req(marker=None), ABSENT, True),
    ("marked, cache has no Lease yet", req(), ABSENT, False),
    ("marked, cache shows it expired", req(), lease(age=63), False),
    ("marked by another txn than the cached holder", req(marker="t2"), HELD, False),
    ("cache failed", req(), LookupFailed("x"), False),
    ("create: nothing to compare", req("CREATE"), HELD, False),
    ("scale: a Scale has no labels", req(sub="scale", marker=None), HELD, False),
    ("update changing the marker", req(new_marker=None), HELD, False),
    ("stamp", req(marker=None, new_marker="t1"), HELD, False),
    ("identity-bound: members may have changed since", req(), BOUND, False),
    ("identity-bound, unmarked object", req(marker=None), BOUND, False),
]


@pytest.mark.parametrize(("request_", "cached", "trusted"), [c[1:] for c in CACHE_CASES],
                         ids=[c[0] for c in CACHE_CASES])
def test_cache_decides_only_where_it_agrees_with_the_marker(request_: AdmissionRequest, cached: LeaseLookupResult,
                                                           trusted: bool) -> None:
    assert trusts_cache(request_, cached, POLICY, NOW) is trusted
    # A profile without markers keeps the cache as it is (its Leases have no members).
    bound = isinstance(cached, LeaseState) and cached.identity_bound
    assert trusts_cache(request_, cached, JANUS, NOW) is not bound


# -- property: an identity-bound lock admits no other identity ------------------------

_SCREENED = {Reason.CONNECT, Reason.EXEMPT_USER, Reason.EXEMPT_GROUP, Reason.EXEMPT_NAMESPACE,
             Reason.STATUS_SUBRESOURCE, Reason.NO_NAME, Reason.FINALIZER_REMOVAL, Reason.UNLOCKABLE,
             Reason.LOCK_LEASE, Reason.EXPIRED}


@hsettings(max_examples=1000)
@given(request=_requests, janus=st.booleans())
def test_a_non_member_never_writes_through_an_identity_bound_lock(request: AdmissionRequest, janus: bool) -> None:
    outsider = replace(request, username="mallory", groups=("developers",))
    verdict = judge(outsider, BOUND, JANUS if janus else POLICY, holder=HolderIdentity("mallory"))
    assert not verdict.allowed or verdict.reason in _SCREENED, verdict


# -- janus: which record and which Leases the app reads ---------------------------------

HOLDER_FOR_CASES = [
    ("the Transaction's SA writing a live janus lock", jreq(user=RUNNER), JANUS_HELD, JANUS, HolderRef("shop", "t1")),
    ("any SA of the Lease's namespace could be it", jreq(user="system:serviceaccount:shop:x"), JANUS_HELD, JANUS,
     HolderRef("shop", "t1")),
    ("a user: no SA, no read", jreq(), JANUS_HELD, JANUS, None),
    ("an SA of another namespace: no read", jreq(user="system:serviceaccount:other:janus-runner"), JANUS_HELD,
     JANUS, None),
    ("an SA whose namespace only starts like the Lease's", jreq(user="system:serviceaccount:shop-2:x"),
     JANUS_HELD, JANUS, None),
    ("expired lock: no read", jreq(user=RUNNER), replace(JANUS_HELD, renew_time=NOW - timedelta(seconds=63)),
     JANUS, None),
    ("no Lease: no read", jreq(user=RUNNER), ABSENT, JANUS, None),
    ("failed Lease lookup: no read", jreq(user=RUNNER), LookupFailed("x"), JANUS, None),
    ("leasegate profile: no holder record", jreq(user=RUNNER), JANUS_HELD, POLICY, None),
]


@pytest.mark.parametrize(("request_", "found", "policy", "expected"), [c[1:] for c in HOLDER_FOR_CASES],
                         ids=[c[0] for c in HOLDER_FOR_CASES])
def test_holder_record_is_read_only_when_it_can_matter(request_: AdmissionRequest, found: LeaseLookupResult,
                                                      policy: DecisionPolicy, expected: HolderRef | None) -> None:
    assert holder_for(request_, found, policy, NOW) == expected


def _clusterrole(namespace: str = "") -> AdmissionRequest:
    return req(group="rbac.authorization.k8s.io", kind="ClusterRole", resource="clusterroles", name="Edit-X",
               namespace=namespace, marker=None)


TARGET_CASES = [
    ("janus: a cluster-scoped object is found by target in any namespace", _clusterrole(), JANUS, "clusterrole-edit-x"),
    ("janus: a Namespace (request.namespace is its name) too",
     req(kind="Namespace", resource="namespaces", name="shop", namespace="shop", marker=None), JANUS,
     "namespace-shop"),
    ("janus: a namespaced object has one Lease", jreq(), JANUS, None),
    ("leasegate: one Lease for every object", _clusterrole(), POLICY, None),
    ("janus: nothing to look up for an exempt user", replace(_clusterrole(), username="system:kube-scheduler"),
     JANUS, None),
]


@pytest.mark.parametrize(("request_", "policy", "expected"), [c[1:] for c in TARGET_CASES],
                         ids=[c[0] for c in TARGET_CASES])
def test_lease_target(request_: AdmissionRequest, policy: DecisionPolicy, expected: str | None) -> None:
    assert lease_target(request_, policy) == expected


def test_janus_lease_location_matches_janus() -> None:
    assert lease_for(jreq(), JANUS) == LeaseRef("shop", "janus-lock-shop-configmap-cfg")
    # A lock client's cluster-scoped janus Lease: in the lock namespace, named with it, as janus names its own.
    assert lease_for(_clusterrole(), JANUS) == LeaseRef(
        "leasegate-system", "janus-lock-leasegate-system-clusterrole-edit-x")


def test_a_cluster_scoped_object_is_refused_if_any_of_its_leases_refuses() -> None:
    in_ops = replace(JANUS_HELD, namespace="ops", name="janus-lock-ops-clusterrole-edit-x")
    in_dev = replace(JANUS_HELD, holder="t2", namespace="dev", name="janus-lock-dev-clusterrole-edit-x")
    ops_runner = HolderIdentity("system:serviceaccount:ops:runner")
    request_ = replace(_clusterrole(), username=ops_runner.username)
    outcomes = [decide(request_, lease_, JANUS, NOW, ops_runner) for lease_ in (in_ops, in_dev)]
    assert [o.reason for o in outcomes] == [Reason.HOLDER_IDENTITY, Reason.NOT_IN_TRANSACTION]
    chosen = strictest(outcomes)
    assert chosen.reason is Reason.NOT_IN_TRANSACTION and chosen.lease == LeaseRef("dev", in_dev.name)
    assert strictest(outcomes[:1]) is outcomes[0]
    assert "dev/janus-lock-dev-clusterrole-edit-x" in chosen.message


def test_janus_refusal_names_the_transaction_record() -> None:
    verdict = judge(jreq(manager="janus-t1"), JANUS_HELD, JANUS)
    assert "transactions.tx.janus.io shop/t1" in verdict.message and "shop/janus-lock-shop-configmap-cfg" in verdict.message


@hsettings(max_examples=1000)
@given(request=_requests, holder=_holders)
def test_under_janus_only_the_holder_identity_or_a_declaration_passes(request: AdmissionRequest,
                                                                       holder: HolderLookupResult) -> None:
    """No field manager, no carried-over annotation: a live janus lock admits nobody else."""
    undeclared = replace(request, new_annotations={}, username="mallory")
    verdict = judge(undeclared, JANUS_HELD, JANUS, holder=holder)
    assert not verdict.allowed or verdict.reason in _SCREENED | {Reason.UNLOCKED, Reason.IN_TRANSACTION}, verdict
    if verdict.allowed and verdict.reason is Reason.IN_TRANSACTION:
        # Only a DELETE of an object that carries the holder's annotation (janus records no principal).
        assert undeclared.operation == "DELETE" and undeclared.old_annotations.get(TXN) == "t1"
