"""Requests, Leases and a judge for the lock rules' tables (webhook.decision, lease_writes, outcome).

Each table is a list of :class:`Case`: a request, what the Lease lookup found,
the policy and enforcement sections it is judged under, and the expected
verdict; :func:`assert_rule` checks one the same way for every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from lockcore.kube import LOCKED_LABEL
from lockcore.lease import LeaseState
from lockcore.members import Members
from lockcore.profiles import Profile
from lockcore.settings import LockSettings
from webhook.decision import decide, lease_for
from webhook.outcome import (
    NOT_LOOKED_UP,
    HolderIdentity,
    HolderLookupResult,
    LeaseLookupResult,
    Reason,
    Verdict,
    enforce,
)
from webhook.review import AdmissionRequest
from webhook.settings import DecisionPolicy, Enforcement

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
TXN = "leasegate.io/transaction"
POLICY = DecisionPolicy()
JANUS = DecisionPolicy(lock=LockSettings(profile=Profile.JANUS))
DENY = Enforcement()
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


def judge(request: AdmissionRequest, found: LeaseLookupResult, policy: DecisionPolicy = POLICY,
          enforcement: Enforcement = DENY, now: datetime = NOW,
          holder: HolderLookupResult = NOT_LOOKED_UP) -> Verdict:
    """``decide`` under ``policy``, then ``enforce`` under ``enforcement``: what the app answers."""
    return enforce(decide(request, found, policy, now, holder), enforcement)


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
# A live lock janus's Transaction t1 holds: its Lease records no principal, its objects no marker.
JANUS_HELD = replace(lease(principal=""), namespace="shop", name="janus-lock-shop-configmap-cfg")


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


def jreq(operation: str = "UPDATE", **kwargs: object) -> AdmissionRequest:
    """A write of configmap cfg under the janus profile (janus stamps no marker)."""
    return req(operation, marker=None, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    id: str
    request: AdmissionRequest
    lease: LeaseLookupResult
    allowed: bool
    reason: Reason
    policy: DecisionPolicy = field(default=POLICY)
    holder: HolderLookupResult = NOT_LOOKED_UP
    enforcement: Enforcement = field(default=DENY)


# Outcomes reached without looking a Lease up (a lock Lease's own write is judged on its stored version).
_NO_LOOKUP = {
    Reason.CONNECT, Reason.LOCK_LEASE, Reason.EXEMPT_USER, Reason.EXEMPT_GROUP,
    Reason.EXEMPT_NAMESPACE, Reason.STATUS_SUBRESOURCE, Reason.NO_NAME,
    Reason.FINALIZER_REMOVAL, Reason.UNLOCKABLE, Reason.LEASE_HOLDER, Reason.LEASE_ADMIN,
    Reason.LEASE_NOT_HOLDER, Reason.LEASE_MEMBER, Reason.LEASE_NOT_MEMBER, Reason.MEMBERS_INVALID,
    Reason.MEMBERS_REQUIRED,
}


def assert_rule(case: Case) -> None:
    """The verdict is the case's, a refusal says why, and ``lease_for`` names a Lease exactly when
    the verdict depends on one."""
    verdict = judge(case.request, case.lease, case.policy, case.enforcement, holder=case.holder)
    assert (verdict.allowed, verdict.reason) == (case.allowed, case.reason)
    if not verdict.allowed:
        assert verdict.code in (403, 503) and verdict.message
    needs_lease = case.reason not in _NO_LOOKUP and case.request.resource != "leases"
    assert (lease_for(case.request, case.policy) is not None) == needs_lease
