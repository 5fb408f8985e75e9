"""Every lock rule of webhook.decision (decide, enforce, trusts_cache), table by table, plus property tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lockcore.kube import LOCKED_LABEL
from lockcore.lease import LeaseState
from lockcore.members import Members
from lockcore.naming import LeaseRef
from lockcore.profiles import Profile
from lockcore.settings import LockSettings
from webhook.decision import decide, holder_for, lease_for, lease_target, strictest, trusts_cache
from webhook.outcome import (
    ABSENT,
    NOT_LOOKED_UP,
    HolderIdentity,
    HolderLookupResult,
    HolderRef,
    LeaseLookupResult,
    LookupFailed,
    Outcome,
    Reason,
    Verdict,
    enforce,
)
from webhook.review import AdmissionRequest
from webhook.settings import EnforcementMode, FailurePolicy, WebhookSettings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
TXN = "leasegate.io/transaction"
SETTINGS = WebhookSettings()
JANUS = WebhookSettings(lock=LockSettings(profile=Profile.JANUS))
# The ServiceAccount janus's Transaction t1 (namespace shop) names: what its steps run as.
RUNNER = "system:serviceaccount:shop:janus-runner"
AS_RUNNER = HolderIdentity(RUNNER)


def req(operation: str = "UPDATE", *, new: str | None = None, old: str | None = None,
        user: str = "bob", groups: tuple[str, ...] = ("developers",), namespace: str = "shop",
        name: str = "cfg", group: str = "", kind: str = "ConfigMap", resource: str = "configmaps",
        sub: str = "", manager: str = "", finalizers_only: bool = False,
        resource_group: str | None = None, marker: str | None = "t1", new_marker: str | None = "",
        status_only: bool = False, old_lease: LeaseState | None = None) -> AdmissionRequest:
    """A request; the object is marked ``marker`` before and after (``new_marker`` "" = unchanged)."""
    after = marker if new_marker == "" else new_marker
    return AdmissionRequest(
        uid="u1", operation=operation, group=group, version="v1", kind=kind, resource=resource,
        resource_group=group if resource_group is None else resource_group, sub_resource=sub,
        namespace=namespace, name=name, username=user, groups=groups,
        new_annotations={TXN: new} if new is not None else {},
        old_annotations={TXN: old} if old is not None else {},
        field_manager=manager, finalizer_removal_only=finalizers_only,
        old_labels={LOCKED_LABEL: marker} if marker and operation != "CREATE" else {},
        new_labels={LOCKED_LABEL: after} if after and operation != "DELETE" else {},
        status_only=status_only, old_lease=old_lease,
    )


def judge(request: AdmissionRequest, found: LeaseLookupResult, settings: WebhookSettings = SETTINGS,
          now: datetime = NOW, holder: HolderLookupResult = NOT_LOOKED_UP) -> Verdict:
    return enforce(decide(request, found, settings.policy, now, holder), settings.enforcement)


def lease(holder: str = "t1", *, principal: str = "alice", age: float = 10, duration: int = 60,
          members: Members | None = None) -> LeaseState:
    return LeaseState(holder=holder, renew_time=NOW - timedelta(seconds=age),
                      duration_seconds=duration, principal=principal, members=members)


HELD = lease()
# An identity-bound lock: alice (who acquired it), group sre, service account shop:deployer.
CREW = Members.of(["user:alice", "group:sre", "sa:shop:deployer"])
# The same crew as bob writes it when he takes a lock (lockcore adds the acquiring user).
BOBS_CREW = CREW.with_user("bob")
BOUND = lease(members=CREW)
DEPLOYER = "system:serviceaccount:shop:deployer"
UNSET = Members(users=("unset",))  # lease_req: new Lease keeps the stored members


def lease_req(operation: str = "UPDATE", *, user: str, groups: tuple[str, ...] = ("developers",),
              principal: str = "alice", age: float = 10, members: Members | None = None,
              new_members: Members | None = UNSET, holder: str = "t1") -> AdmissionRequest:
    """A write to the lock Lease of configmap cfg (its stored version is a live lock by default).

    ``new_members`` are those of the Lease written (CREATE/UPDATE); by default the stored ones.
    """
    stored = replace(lease(principal=principal, age=age, members=members), namespace="shop",
                     name="lg.configmap.cfg", labels={TXN: "t1"})
    # lockcore records the requester as principal of every lock it creates or takes over
    taken = operation == "CREATE" or holder != stored.holder
    written = replace(stored, holder=holder, principal=user if taken else stored.principal,
                      members=members if new_members is UNSET else new_members)
    return replace(req(operation, user=user, groups=groups, group="coordination.k8s.io", kind="Lease",
                       resource="leases", name="lg.configmap.cfg", marker=None,
                       old_lease=stored if operation != "CREATE" else None),
                   new_lease=written if operation != "DELETE" else None)


def _janus_lease_create() -> AdmissionRequest:
    created = lease_req("CREATE", user="bob")
    assert created.new_lease is not None
    return replace(created, new_lease=replace(created.new_lease, labels={"janus.io/transaction": "t1"}))


@dataclass(frozen=True)
class Case:
    id: str
    request: AdmissionRequest
    lease: LeaseLookupResult
    allowed: bool
    reason: Reason
    settings: WebhookSettings = field(default=SETTINGS)
    holder: HolderLookupResult = NOT_LOOKED_UP


# A live lock janus's Transaction t1 holds: its Lease records no principal, its objects no marker.
JANUS_HELD = replace(lease(principal=""), namespace="shop", name="janus-lock-shop-configmap-cfg")


def jreq(operation: str = "UPDATE", **kwargs: object) -> AdmissionRequest:
    """A write of configmap cfg under the janus profile (janus stamps no marker)."""
    return req(operation, marker=None, **kwargs)  # type: ignore[arg-type]


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
         replace(SETTINGS, exempt_users=("ci-bot",))),
    Case("a Lease that is no lock is not guarded",
         req(group="coordination.k8s.io", kind="Lease", resource="leases"), HELD, True,
         Reason.LOCK_LEASE),
    Case("connect is not a write", req("CONNECT"), HELD, True, Reason.CONNECT),
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
         replace(SETTINGS, lookup_failure_policy=FailurePolicy.ALLOW)),
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
    # -- lock Leases ---------------------------------------------------------
    Case("live lock Lease deleted by another user", lease_req("DELETE", user="bob"), ABSENT, False,
         Reason.LEASE_NOT_HOLDER),
    Case("live lock Lease updated by another user", lease_req(user="bob"), ABSENT, False,
         Reason.LEASE_NOT_HOLDER),
    Case("live lock Lease renewed by its principal", lease_req(user="alice"), ABSENT, True,
         Reason.LEASE_HOLDER),
    Case("live lock Lease force-released by an admin", lease_req("DELETE", user="root",
                                                                 groups=("system:masters",)), ABSENT, True,
         Reason.LEASE_ADMIN),
    Case("expired lock Lease taken over", lease_req(user="bob", age=63), ABSENT, True, Reason.EXPIRED),
    Case("lock Lease create is not judged", lease_req("CREATE", user="bob"), ABSENT, True, Reason.LOCK_LEASE),
    Case("lock Lease created recording someone else as principal",
         replace(lease_req("CREATE", user="bob"), new_lease=replace(lease(principal="alice"), labels={TXN: "t1"})),
         ABSENT, False, Reason.PRINCIPAL_NOT_REQUESTER),
    Case("a lock admin may create a lock for someone else",
         replace(lease_req("CREATE", user="root", groups=("system:masters",)),
                 new_lease=replace(lease(principal="alice"), labels={TXN: "t1"})),
         ABSENT, True, Reason.LOCK_LEASE),
    Case("an expired lock taken over recording someone else",
         replace(lease_req(user="bob", age=63, holder="t2"),
                 new_lease=replace(lease(principal="carol", holder="t2"), labels={TXN: "t1"})),
         ABSENT, False, Reason.PRINCIPAL_NOT_REQUESTER),
    Case("a lock created with members that leave the creator out",
         lease_req("CREATE", user="bob", new_members=Members.of(["user:carol"])), ABSENT, False,
         Reason.PRINCIPAL_NOT_REQUESTER),
    Case("janus Lease without principal is not guarded", lease_req(user="bob", principal=""), ABSENT, True,
         Reason.LOCK_LEASE),
    Case("exempt user may delete a live lock Lease (namespace deletion)",
         lease_req("DELETE", user="system:serviceaccount:kube-system:namespace-controller"), ABSENT, True,
         Reason.EXEMPT_USER),
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
    # -- identity-bound lock Leases -------------------------------------------
    Case("bound Lease: member group's user renews", lease_req(user="bob", groups=("sre",), members=CREW), ABSENT,
         True, Reason.LEASE_MEMBER),
    Case("bound Lease: member adds a member", lease_req(user=DEPLOYER, members=CREW,
                                                        new_members=CREW.union(Members.of(["user:bob"]))),
         ABSENT, True, Reason.LEASE_MEMBER),
    Case("bound Lease: non-member adds himself (tampering)", lease_req(
        user="bob", members=CREW, new_members=CREW.union(Members.of(["user:bob"]))), ABSENT, False,
         Reason.LEASE_NOT_MEMBER),
    Case("bound Lease: non-member writes garbage members", lease_req(
        user="bob", members=CREW, new_members=Members.unreadable()), ABSENT, False, Reason.LEASE_NOT_MEMBER),
    Case("bound Lease: non-member deletes", lease_req("DELETE", user="bob", members=CREW), ABSENT, False,
         Reason.LEASE_NOT_MEMBER),
    Case("bound Lease: member writes unreadable members", lease_req(
        user="alice", members=CREW, new_members=Members.unreadable()), ABSENT, False, Reason.MEMBERS_INVALID),
    Case("bound Lease: member drops the members annotation", lease_req(user="alice", members=CREW,
                                                                       new_members=None), ABSENT, False,
         Reason.MEMBERS_INVALID),
    Case("bound Lease: member releases", lease_req("DELETE", user="bob", groups=("sre",), members=CREW), ABSENT,
         True, Reason.LEASE_MEMBER),
    Case("bound Lease: admin force-releases", lease_req("DELETE", user="root", groups=("system:masters",),
                                                        members=CREW), ABSENT, True, Reason.LEASE_ADMIN),
    Case("bound Lease: principal no longer a member", lease_req(user="alice", members=Members.of(["group:sre"])),
         ABSENT, False, Reason.LEASE_NOT_MEMBER),
    Case("bound Lease: expired one taken over without members", lease_req(user="bob", members=CREW, age=63,
                                                                          new_members=None, holder="t2"),
         ABSENT, True, Reason.EXPIRED),
    Case("unbound Lease: not even its principal binds it while live", lease_req(user="alice", new_members=CREW),
         ABSENT, False, Reason.MEMBERS_INVALID),
    Case("unbound Lease: an expired one taken over with members", lease_req(user="bob", age=63, new_members=BOBS_CREW,
                                                                            holder="t2"),
         ABSENT, True, Reason.EXPIRED),
    Case("unbound Lease: another user makes it identity-bound", lease_req(user="bob", new_members=CREW),
         ABSENT, False, Reason.LEASE_NOT_HOLDER),
    Case("lock Lease created with unreadable members", lease_req("CREATE", user="bob",
                                                                 new_members=Members.unreadable()),
         ABSENT, False, Reason.MEMBERS_INVALID),
    Case("lock Lease created with members", lease_req("CREATE", user="bob", new_members=BOBS_CREW), ABSENT, True,
         Reason.LOCK_LEASE),
    Case("require_members: create without members", lease_req("CREATE", user="bob"), ABSENT, False,
         Reason.MEMBERS_REQUIRED, replace(SETTINGS, require_members=True)),
    Case("require_members: create with members", lease_req("CREATE", user="bob", new_members=BOBS_CREW), ABSENT, True,
         Reason.LOCK_LEASE, replace(SETTINGS, require_members=True)),
    Case("require_members: takeover without members", lease_req(user="bob", age=63, holder="t2"), ABSENT, False,
         Reason.MEMBERS_REQUIRED, replace(SETTINGS, require_members=True)),
    Case("require_members: an older unbound lock keeps renewing", lease_req(user="alice"), ABSENT, True,
         Reason.LEASE_HOLDER, replace(SETTINGS, require_members=True)),
    Case("require_members: not for the janus profile (a janus Lease has no members)", _janus_lease_create(),
         ABSENT, True, Reason.LOCK_LEASE, replace(JANUS, require_members=True)),
    # -- custom annotation key ---------------------------------------------
    Case("custom annotation key is the one read", req(new="t1"), HELD, False,
         Reason.NOT_IN_TRANSACTION, replace(SETTINGS, lock=LockSettings(txn_annotation="example.com/txn"))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(case: Case) -> None:
    verdict = judge(case.request, case.lease, case.settings, holder=case.holder)
    assert (verdict.allowed, verdict.reason) == (case.allowed, case.reason)
    if not verdict.allowed:
        assert verdict.code in (403, 503) and verdict.message
    # lease_for names a Lease exactly when the verdict depends on one (a lock
    # Lease's own write is judged on its stored version).
    needs_lease = case.reason not in {
        Reason.CONNECT, Reason.LOCK_LEASE, Reason.EXEMPT_USER, Reason.EXEMPT_GROUP,
        Reason.EXEMPT_NAMESPACE, Reason.STATUS_SUBRESOURCE, Reason.NO_NAME,
        Reason.FINALIZER_REMOVAL, Reason.UNLOCKABLE, Reason.LEASE_HOLDER, Reason.LEASE_ADMIN,
        Reason.LEASE_NOT_HOLDER, Reason.LEASE_MEMBER, Reason.LEASE_NOT_MEMBER, Reason.MEMBERS_INVALID,
        Reason.MEMBERS_REQUIRED,
    } and case.request.resource != "leases"
    assert (lease_for(case.request, case.settings.policy) is not None) == needs_lease


def test_lease_location_matches_lockcore() -> None:
    assert lease_for(req(), SETTINGS.policy) == LeaseRef("shop", "lg.configmap.cfg")
    cluster = req(namespace="", kind="Namespace", resource="namespaces", name="shop")
    assert lease_for(cluster, SETTINGS.policy) == LeaseRef("leasegate-system", "lgc.namespace.shop")
    # The API server sets request.namespace of a Namespace to its own name.
    namespace_obj = req(namespace="shop", kind="Namespace", resource="namespaces", name="shop")
    assert lease_for(namespace_obj, SETTINGS.policy) == LeaseRef("leasegate-system", "lgc.namespace.shop")
    scale = req(group="autoscaling", kind="Scale", resource="deployments", resource_group="apps", sub="scale",
                name="web")
    assert lease_for(scale, SETTINGS.policy) == LeaseRef("shop", "lg.deployment.web.apps")


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
    theft = judge(lease_req("DELETE", user="bob"), ABSENT)
    assert "only 'alice' may renew, change or release it" in theft.message and "system:masters" in theft.message


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
    theft = judge(lease_req(user="bob", members=CREW, new_members=CREW.union(Members.of(["user:bob"]))), ABSENT)
    assert "identity-bound" in theft.message and "only its members may" in theft.message
    assert "system:masters" in theft.message and "alice" not in theft.message and "sre" not in theft.message
    disclosed = replace(SETTINGS, disclose_members=True)
    shown = judge(req(new="t1"), BOUND, disclosed).message
    assert "(members: group:sre, sa:shop:deployer, user:alice)" in shown
    assert "group:sre" in judge(lease_req("DELETE", user="bob", members=CREW), ABSENT, disclosed).message


def test_invalid_and_required_members_say_what_to_do() -> None:
    required = judge(lease_req("CREATE", user="bob"), ABSENT, replace(SETTINGS, require_members=True))
    assert "requires identity-bound locks" in required.message and "--member" in required.message
    garbage = judge(lease_req("CREATE", user="bob", new_members=Members.unreadable()), ABSENT)
    assert "leasegate.io/members is not a valid members list" in garbage.message
    dropped = judge(lease_req(user="alice", members=CREW, new_members=None), ABSENT)
    bound_late = judge(lease_req(user="alice", new_members=CREW), ABSENT)
    for fixed in (dropped, bound_late):
        assert "chosen when it is acquired" in fixed.message and "cannot be added or removed" in fixed.message


@pytest.mark.parametrize(("mode", "warned"), [(EnforcementMode.WARN, True), (EnforcementMode.DRYRUN, False)])
def test_warn_and_dryrun_allow_but_record(mode: EnforcementMode, warned: bool) -> None:
    verdict = judge(req(), HELD, replace(SETTINGS, mode=mode))
    assert verdict.allowed and verdict.would_deny and verdict.decision == mode.value
    assert bool(verdict.warnings) is warned
    if warned:
        assert "t1" in verdict.warnings[0]


@pytest.mark.parametrize(("configured", "label", "effective"), [
    (EnforcementMode.DENY, EnforcementMode.DRYRUN, EnforcementMode.DENY),
    (EnforcementMode.DENY, EnforcementMode.WARN, EnforcementMode.DENY),
    (EnforcementMode.WARN, EnforcementMode.DRYRUN, EnforcementMode.WARN),
    (EnforcementMode.DRYRUN, EnforcementMode.DENY, EnforcementMode.DENY),
    (EnforcementMode.DRYRUN, EnforcementMode.WARN, EnforcementMode.WARN),
    (EnforcementMode.WARN, None, EnforcementMode.WARN),
])
def test_a_namespace_label_only_makes_enforcement_stricter(configured: EnforcementMode,
                                                           label: EnforcementMode | None,
                                                           effective: EnforcementMode) -> None:
    assert configured.stricter(label) is effective


def test_enforce_owns_codes_and_reasons() -> None:
    blocked = Outcome(Reason.OTHER_TRANSACTION, "locked")
    failed = Outcome(Reason.LOOKUP_FAILED, "could not read")
    deny, allow_on_failure = SETTINGS.enforcement, replace(SETTINGS, lookup_failure_policy=FailurePolicy.ALLOW)
    assert (enforce(blocked, deny).code, enforce(blocked, deny).status_reason) == (403, "Forbidden")
    assert (enforce(failed, deny).code, enforce(failed, deny).status_reason) == (503, "ServiceUnavailable")
    assert enforce(failed, allow_on_failure.enforcement).allowed
    assert enforce(Outcome(Reason.UNLOCKED), deny) == Verdict(allowed=True, reason=Reason.UNLOCKED,
                                                              mode=EnforcementMode.DENY)


def test_lookup_failure_says_so() -> None:
    denied = judge(req(), LookupFailed("connection refused"))
    assert denied.code == 503 and "connection refused" in denied.message
    assert "lookup_failure_policy=deny" in denied.message
    allowed = judge(req(), LookupFailed("timeout"), replace(SETTINGS, lookup_failure_policy=FailurePolicy.ALLOW))
    assert allowed.warnings and "lookup_failure_policy=allow" in allowed.warnings[0]
    assert not allowed.would_deny


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
    config = replace(JANUS if janus else SETTINGS, mode=mode, lookup_failure_policy=policy,
                     require_members=required)
    verdict = judge(request, found, config, holder=holder)
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
    assert trusts_cache(request_, cached, SETTINGS.policy, NOW) is trusted
    # A profile without markers keeps the cache as it is (its Leases have no members).
    bound = isinstance(cached, LeaseState) and cached.identity_bound
    assert trusts_cache(request_, cached, JANUS.policy, NOW) is not bound


# -- property: an identity-bound lock admits no other identity ------------------------

_SCREENED = {Reason.CONNECT, Reason.EXEMPT_USER, Reason.EXEMPT_GROUP, Reason.EXEMPT_NAMESPACE,
             Reason.STATUS_SUBRESOURCE, Reason.NO_NAME, Reason.FINALIZER_REMOVAL, Reason.UNLOCKABLE,
             Reason.LOCK_LEASE, Reason.EXPIRED}


@hsettings(max_examples=1000)
@given(request=_requests, janus=st.booleans())
def test_a_non_member_never_writes_through_an_identity_bound_lock(request: AdmissionRequest, janus: bool) -> None:
    outsider = replace(request, username="mallory", groups=("developers",))
    verdict = judge(outsider, BOUND, JANUS if janus else SETTINGS, holder=HolderIdentity("mallory"))
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
    ("leasegate profile: no holder record", jreq(user=RUNNER), JANUS_HELD, SETTINGS, None),
]


@pytest.mark.parametrize(("request_", "found", "settings", "expected"), [c[1:] for c in HOLDER_FOR_CASES],
                         ids=[c[0] for c in HOLDER_FOR_CASES])
def test_holder_record_is_read_only_when_it_can_matter(request_: AdmissionRequest, found: LeaseLookupResult,
                                                      settings: WebhookSettings, expected: HolderRef | None) -> None:
    assert holder_for(request_, found, settings.policy, NOW) == expected


def _clusterrole(namespace: str = "") -> AdmissionRequest:
    return req(group="rbac.authorization.k8s.io", kind="ClusterRole", resource="clusterroles", name="Edit-X",
               namespace=namespace, marker=None)


TARGET_CASES = [
    ("janus: a cluster-scoped object is found by target in any namespace", _clusterrole(), JANUS, "clusterrole-edit-x"),
    ("janus: a Namespace (request.namespace is its name) too",
     req(kind="Namespace", resource="namespaces", name="shop", namespace="shop", marker=None), JANUS,
     "namespace-shop"),
    ("janus: a namespaced object has one Lease", jreq(), JANUS, None),
    ("leasegate: one Lease for every object", _clusterrole(), SETTINGS, None),
    ("janus: nothing to look up for an exempt user", replace(_clusterrole(), username="system:kube-scheduler"),
     JANUS, None),
]


@pytest.mark.parametrize(("request_", "settings", "expected"), [c[1:] for c in TARGET_CASES],
                         ids=[c[0] for c in TARGET_CASES])
def test_lease_target(request_: AdmissionRequest, settings: WebhookSettings, expected: str | None) -> None:
    assert lease_target(request_, settings.policy) == expected


def test_janus_lease_location_matches_janus() -> None:
    assert lease_for(jreq(), JANUS.policy) == LeaseRef("shop", "janus-lock-shop-configmap-cfg")
    # A lock client's cluster-scoped janus Lease: in the lock namespace, named with it, as janus names its own.
    assert lease_for(_clusterrole(), JANUS.policy) == LeaseRef(
        "leasegate-system", "janus-lock-leasegate-system-clusterrole-edit-x")


def test_a_cluster_scoped_object_is_refused_if_any_of_its_leases_refuses() -> None:
    in_ops = replace(JANUS_HELD, namespace="ops", name="janus-lock-ops-clusterrole-edit-x")
    in_dev = replace(JANUS_HELD, holder="t2", namespace="dev", name="janus-lock-dev-clusterrole-edit-x")
    ops_runner = HolderIdentity("system:serviceaccount:ops:runner")
    request_ = replace(_clusterrole(), username=ops_runner.username)
    outcomes = [decide(request_, lease_, JANUS.policy, NOW, ops_runner) for lease_ in (in_ops, in_dev)]
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
