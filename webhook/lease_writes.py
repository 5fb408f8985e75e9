"""Writes to lock Leases: who may change or delete a live lock, and what a lock may store.

Rule 2 of :func:`webhook.decision.decide`. A lock is attributed to whoever
writes it: a principal newly recorded must be the requester. A lock Lease is judged on its stored
version (``AdmissionRequest.old_lease``) and the version the write would store
(``new_lease``): while it is live only its principal (or, for an
identity-bound lock, its members) or a lock admin group may change or delete
it, so nobody steals a lock by deleting its Lease; and the members it would
store must be readable, keep the lock as bound (or unbound) as it was
acquired, and exist where the cluster requires them.

Example::

    outcome = judge_lease_write(request, policy, now)   # Outcome(Reason.LEASE_NOT_HOLDER, ...) for a thief
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from lockcore.lease import LeaseState
from lockcore.members import MEMBERS_ANNOTATION, Members
from lockcore.naming import InvalidKeyError, LeaseRef
from webhook.outcome import Outcome, Reason
from webhook.review import AdmissionRequest
from webhook.settings import DecisionPolicy


def judge_lease_write(request: AdmissionRequest, policy: DecisionPolicy, now: datetime) -> Outcome:
    """Rule 2: a live lock Lease is changed or deleted only by its principal (its members) or a lock admin.

    Anyone else could otherwise delete another transaction's lock and then
    write the object, or add themselves to its members. Expired Leases may
    be taken over as ever; a Lease that is no lock (no transaction label, or
    neither principal nor members recorded) is not ours to guard.
    Whoever may write it, what it would store is judged too
    (:func:`_written_members`).
    """
    stored = request.old_lease
    label = policy.lock.lock_profile.txn_label
    try:
        ref: LeaseRef | None = LeaseRef(request.namespace, request.name)
    except InvalidKeyError:
        ref = None
    admin = any(g in policy.lock_admin_groups for g in request.groups)
    if not admin and (attributed := _misattributed(request, policy, ref)) is not None:
        return attributed
    if request.operation == "CREATE" or stored is None or label not in stored.labels \
            or not (stored.principal or stored.identity_bound):
        return _written_members(request, policy, now, ref) or Outcome(Reason.LOCK_LEASE)
    expired = Outcome(Reason.EXPIRED, lease=ref, holder=stored.holder, seconds_left=stored.seconds_left(now))
    if not stored.is_live(now, policy.lock.clock_skew_seconds):
        return _written_members(request, policy, now, ref) or expired
    if stored.members is not None:
        allowed = stored.members.admits(request.username, request.groups)
        writer = replace(expired, reason=Reason.LEASE_MEMBER if allowed else Reason.LEASE_NOT_MEMBER,
                         message="" if allowed else _not_member_of_lease(request, ref, stored, policy, now))
    else:
        allowed = request.username == stored.principal
        writer = replace(expired, reason=Reason.LEASE_HOLDER if allowed else Reason.LEASE_NOT_HOLDER,
                         message="" if allowed else _not_holder_of_lease(ref, stored, policy, now))
    if allowed:
        return _written_members(request, policy, now, ref) or writer
    if admin:
        return replace(expired, reason=Reason.LEASE_ADMIN)
    return writer


def _misattributed(request: AdmissionRequest, policy: DecisionPolicy, ref: LeaseRef | None) -> Outcome | None:
    """A lock is attributed to whoever writes it: a principal newly recorded must be the requester.

    Otherwise anyone could create a lock recording ``principal: alice``, which
    alice never took (and whose marker only alice may remove without the
    webhook). A renewal keeps the stored principal; new members must include
    the requester, as lockcore writes them. A lock admin acting on purpose is
    the exception (audited as ``lease-admin``).
    """
    new, stored = request.new_lease, request.old_lease
    if request.operation == "DELETE" or new is None or not policy.lock.lock_profile.records_principal \
            or policy.lock.lock_profile.txn_label not in new.labels or not new.holder:
        return None  # no lock (a Lease holding nothing locks nothing)
    kept = stored is not None and stored.principal == new.principal and stored.holder == new.holder
    recorded = new.principal == request.username
    counted = new.members is None or kept or not new.members.readable \
        or new.members.admits(request.username, ())
    if (kept or recorded) and counted:
        return None
    return Outcome(Reason.PRINCIPAL_NOT_REQUESTER, lease=ref, holder=new.holder, message=(
        f"lock lease {ref} would record {new.principal or 'no principal'!r} as the principal who took the lock "
        f"for transaction {new.holder!r}{'' if counted else ' and members without the requester'}, but "
        f"{describe_requester(request)} is writing it: a lock records who takes it (lockcore does); an "
        f"administrator in a lock admin group may write one for someone else"))


def _written_members(request: AdmissionRequest, policy: DecisionPolicy, now: datetime,
                     ref: LeaseRef | None) -> Outcome | None:
    """The members a lock Lease write would store, judged: a refusal, or None if they may be stored.

    They must be readable (a typo must not silently lock everybody out); a
    live lock stays identity-bound or not, as it was acquired (members change
    with ``kubectl lock members add|remove``, never the whole list); and with
    ``require_members`` every new lock (create, or takeover) must have some.
    """
    new, stored = request.new_lease, request.old_lease
    if request.operation == "DELETE" or new is None or policy.lock.lock_profile.txn_label not in new.labels \
            or not new.holder:
        return None
    skew = policy.lock.clock_skew_seconds
    kept = stored is not None and stored.holder == new.holder and stored.is_live(now, skew)
    refused = Outcome(Reason.MEMBERS_INVALID, lease=ref, holder=new.holder)
    if new.members is not None and not new.members.readable:
        return replace(refused, message=(
            f"lock lease {ref}: annotation {MEMBERS_ANNOTATION} is not a valid members list (versioned JSON, "
            f"e.g. {Members(users=('alice',), groups=('sre',)).encode()}; docs/lockcore.md)"))
    if kept and stored is not None and (stored.members is None) != (new.members is None):
        # Bound or not is fixed for a lock's life: the cache decides writes of unbound locks'
        # objects, so a lock bound after the fact would bind only once the watch delivered it.
        return replace(refused, message=(
            f"lock lease {ref}: whether a lock is identity-bound is chosen when it is acquired and kept while "
            f"transaction {new.holder!r} holds it, so annotation {MEMBERS_ANNOTATION} cannot be added or removed "
            f"(`kubectl lock members add|remove` changes an identity-bound lock's members; release and acquire "
            f"with --member to bind a lock)"))
    if policy.require_members and not kept and new.members is None and policy.lock.lock_profile.records_principal:
        return replace(refused, reason=Reason.MEMBERS_REQUIRED, message=(
            f"this cluster requires identity-bound locks (leasegate require_members): lock lease {ref} for "
            f"transaction {new.holder!r} names no members; acquire with --member user:NAME|group:NAME|sa:NS:NAME "
            f"or --members-only (library: members=[...]); the acquiring user is always a member"))
    return None


def _not_holder_of_lease(ref: LeaseRef | None, stored: LeaseState, policy: DecisionPolicy, now: datetime) -> str:
    admins = ", ".join(policy.lock_admin_groups) or "none configured"
    return (f"lock lease {ref} is held by transaction {stored.holder!r} (acquired by user "
            f"{stored.principal!r}, expires in {max(stored.seconds_left(now), 0):.0f}s): while it is live "
            f"only {stored.principal!r} may renew, change or release it; an administrator in a lock admin "
            f"group ({admins}) can force-release it (`kubectl lock force-release`)")


def _not_member_of_lease(request: AdmissionRequest, ref: LeaseRef | None, stored: LeaseState,
                         policy: DecisionPolicy, now: datetime) -> str:
    admins = ", ".join(policy.lock_admin_groups) or "none configured"
    return (f"lock lease {ref} is identity-bound, held by transaction {stored.holder!r} (expires in "
            f"{max(stored.seconds_left(now), 0):.0f}s): while it is live only its members may renew, change or "
            f"release it or change its members, and {describe_requester(request)} is not one{disclosed_members(stored, policy)}; "
            f"an administrator in a lock admin group ({admins}) can force-release it (`kubectl lock force-release`)")


def describe_requester(request: AdmissionRequest) -> str:
    return Members(users=(request.username,)).specs()[0] if request.username else "an anonymous user"


def disclosed_members(lease: LeaseState, policy: DecisionPolicy) -> str:
    """The members, for a refusal, only where the cluster chose to disclose them (``disclose_members``)."""
    if not policy.disclose_members or lease.members is None:
        return ""
    return f" (members: {', '.join(lease.members.specs()) or 'none readable'})"
