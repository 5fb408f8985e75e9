"""webhook.lease_writes: who may change or delete a live lock Lease, and what a lock may store (rule 2)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lockcore.members import Members
from tests.support.decisions import (
    BOBS_CREW,
    CREW,
    DEPLOYER,
    HELD,
    JANUS,
    POLICY,
    TXN,
    Case,
    assert_rule,
    judge,
    lease,
    lease_req,
    req,
)
from webhook.outcome import ABSENT, Reason
from webhook.review import AdmissionRequest


def _janus_lease_create() -> AdmissionRequest:
    created = lease_req("CREATE", user="bob")
    assert created.new_lease is not None
    return replace(created, new_lease=replace(created.new_lease, labels={"janus.io/transaction": "t1"}))


CASES = [
    # -- a Lease that is no lock ------------------------------------------------
    Case("a Lease that is no lock is not guarded",
         req(group="coordination.k8s.io", kind="Lease", resource="leases"), HELD, True,
         Reason.LOCK_LEASE),
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
         Reason.MEMBERS_REQUIRED, replace(POLICY, require_members=True)),
    Case("require_members: create with members", lease_req("CREATE", user="bob", new_members=BOBS_CREW), ABSENT, True,
         Reason.LOCK_LEASE, replace(POLICY, require_members=True)),
    Case("require_members: takeover without members", lease_req(user="bob", age=63, holder="t2"), ABSENT, False,
         Reason.MEMBERS_REQUIRED, replace(POLICY, require_members=True)),
    Case("require_members: an older unbound lock keeps renewing", lease_req(user="alice"), ABSENT, True,
         Reason.LEASE_HOLDER, replace(POLICY, require_members=True)),
    Case("require_members: not for the janus profile (a janus Lease has no members)", _janus_lease_create(),
         ABSENT, True, Reason.LOCK_LEASE, replace(JANUS, require_members=True)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(case: Case) -> None:
    assert_rule(case)


def test_a_thief_is_told_who_holds_the_lock_and_the_way_out() -> None:
    theft = judge(lease_req("DELETE", user="bob"), ABSENT)
    assert "only 'alice' may renew, change or release it" in theft.message and "system:masters" in theft.message


def test_a_non_member_is_told_the_lease_is_identity_bound_but_not_who_its_members_are() -> None:
    theft = judge(lease_req(user="bob", members=CREW, new_members=CREW.union(Members.of(["user:bob"]))), ABSENT)
    assert "identity-bound" in theft.message and "only its members may" in theft.message
    assert "system:masters" in theft.message and "alice" not in theft.message and "sre" not in theft.message
    disclosed = replace(POLICY, disclose_members=True)
    assert "group:sre" in judge(lease_req("DELETE", user="bob", members=CREW), ABSENT, disclosed).message


def test_invalid_and_required_members_say_what_to_do() -> None:
    required = judge(lease_req("CREATE", user="bob"), ABSENT, replace(POLICY, require_members=True))
    assert "requires identity-bound locks" in required.message and "--member" in required.message
    garbage = judge(lease_req("CREATE", user="bob", new_members=Members.unreadable()), ABSENT)
    assert "leasegate.io/members is not a valid members list" in garbage.message
    dropped = judge(lease_req(user="alice", members=CREW, new_members=None), ABSENT)
    bound_late = judge(lease_req(user="alice", new_members=CREW), ABSENT)
    for fixed in (dropped, bound_late):
        assert "chosen when it is acquired" in fixed.message and "cannot be added or removed" in fixed.message
