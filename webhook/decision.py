"""The lock decision: a pure function from a request and a Lease to an outcome.

Judgement and enforcement are kept apart:

* :func:`decide` (here) says what the lock says of a write: a
  :class:`~webhook.outcome.Outcome` that is allowed (with the reason), blocked
  (with the reason and a message naming the holder and the way out) or a
  failed lookup. It knows nothing of modes or HTTP.
* :func:`webhook.outcome.enforce` says what an outcome means under an
  :class:`~webhook.settings.Enforcement` (deny | warn | dryrun,
  ``lookup_failure_policy``): the :class:`~webhook.outcome.Verdict`, with the
  HTTP code and status reason, in one place.

Writes to lock Leases themselves are judged in :mod:`webhook.lease_writes`.
Neither does I/O, so both are tested exhaustively by tables and property
tests; the app only fetches the Lease that :func:`lease_for` names (freshly
where :func:`trusts_cache` says the cache cannot be trusted) and reports.

Rules of :func:`decide`, in order (the first that applies wins; docs/webhook.md):

1. CONNECT requests, exempt users, groups and namespaces, ``status`` writes
   that change nothing outside ``.status`` (:attr:`AdmissionRequest.status_only`)
   are allowed without a lookup.
2. A write to a lock Lease is judged on the stored Lease itself
   (:func:`webhook.lease_writes.judge_lease_write`): while it is live only its recorded principal (for
   an identity-bound lock: its members) or a lock admin group may change or
   delete it; members written must be readable, and with ``require_members``
   a new lock must have some.
3. A create whose name is not known yet (``generateName``), an object no lock
   can name, and an update that only removes finalizers of an object being
   deleted are allowed (a deletion never hangs on a lock).
4. No Lease, or an expired one (``LeaseState.is_live`` with the clock-skew
   margin): allowed.
5. The Lease cannot be read: the outcome says so (enforcement applies
   ``lookup_failure_policy``).
6. A live Lease held by transaction H: a create or update must keep the
   marker ``leasegate.io/locked=H`` on the object (profiles that fence), and
   the write must prove it belongs to H (:func:`_proof`); otherwise *blocked*.
   An identity-bound lock (the Lease records members) first requires the
   requester to be a member (:func:`_member_proof`). Being the identity a
   profile's holder record names proves it (the app reads it: :func:`holder_for`).

Several Leases of one object (:func:`lease_target`): the :func:`strictest` outcome.

Example::

    >>> from datetime import datetime, timezone
    >>> from webhook.outcome import ABSENT, enforce
    >>> from webhook.review import AdmissionRequest
    >>> from webhook.settings import DecisionPolicy, Enforcement
    >>> req = AdmissionRequest(uid="u", operation="UPDATE", group="", version="v1",
    ...                        kind="ConfigMap", resource="configmaps", namespace="shop",
    ...                        name="cfg", username="bob")
    >>> outcome = decide(req, ABSENT, DecisionPolicy(), datetime.now(timezone.utc))
    >>> outcome.reason.value, enforce(outcome, Enforcement()).allowed
    ('unlocked', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lockcore.kube import LEASES, LOCKED_LABEL, NAMESPACES, PRINCIPAL_ANNOTATION, SCALE_PARENTS
from lockcore.lease import LeaseState
from lockcore.members import Members
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey, describe_object, lease_ref
from lockcore.profiles import HolderRecord
from webhook.lease_writes import describe_requester, disclosed_members, judge_lease_write
from webhook.outcome import (
    NOT_LOOKED_UP,
    HolderIdentity,
    HolderLookupResult,
    HolderRef,
    LeaseAbsent,
    LeaseLookupResult,
    LookupFailed,
    Outcome,
    Reason,
)
from webhook.review import AdmissionRequest
from webhook.settings import DecisionPolicy


def resource_key(request: AdmissionRequest) -> ResourceKey:
    """The lock key of the object a request writes (raises InvalidKeyError)."""
    kind = request.kind
    if request.sub_resource == "scale":
        kind = SCALE_PARENTS.get((request.resource_group, request.resource), "")
        if not kind:
            raise InvalidKeyError(f"no lock key for {request.resource}/scale in group {request.group!r}")
        # The Scale's own group (autoscaling) is not the parent's: use the resource's.
        return ResourceKey(group=request.resource_group, kind=kind, namespace=request.namespace,
                           name=request.name)
    # The API server fills request.namespace of a Namespace with its own name;
    # a Namespace is cluster-scoped, and lockcore keys it so.
    namespace = "" if (request.resource_group, request.resource) == NAMESPACES else request.namespace
    return ResourceKey(group=request.group, kind=kind, namespace=namespace, name=request.name)


def _screen(request: AdmissionRequest, policy: DecisionPolicy) -> Reason | None:
    """Rule 1: the reason a write passes without any lock in question, or None."""
    if request.operation == "CONNECT":
        return Reason.CONNECT
    if request.username in policy.exempt_users:
        return Reason.EXEMPT_USER
    if any(g in policy.exempt_groups for g in request.groups):
        return Reason.EXEMPT_GROUP
    if request.namespace and request.namespace in policy.exempt_namespaces \
            and (request.resource_group, request.resource) != NAMESPACES:
        return Reason.EXEMPT_NAMESPACE
    if request.status_only:
        return Reason.STATUS_SUBRESOURCE
    return None


def _target(request: AdmissionRequest, policy: DecisionPolicy) -> Reason | LeaseRef:
    """Rule 3: the reason no Lease matters, or the Lease to look up."""
    if not request.name:
        return Reason.NO_NAME
    if request.finalizer_removal_only:
        return Reason.FINALIZER_REMOVAL
    try:
        return lease_ref(resource_key(request), policy.lock)
    except InvalidKeyError:
        return Reason.UNLOCKABLE


def is_lease_write(request: AdmissionRequest) -> bool:
    return (request.resource_group, request.resource) == LEASES


def lease_for(request: AdmissionRequest, policy: DecisionPolicy) -> LeaseRef | None:
    """The Lease that :func:`decide` needs for ``request``, or None if none is needed."""
    if _screen(request, policy) is not None or is_lease_write(request):
        return None
    target = _target(request, policy)
    return target if isinstance(target, LeaseRef) else None


def lease_target(request: AdmissionRequest, policy: DecisionPolicy) -> str | None:
    """The name scheme's target of a cluster-scoped object whose Leases may be anywhere; else None."""
    scheme = policy.lock.lock_profile.names
    if scheme is None or lease_for(request, policy) is None:
        return None
    key = resource_key(request)  # lease_for named a Lease, so the key is valid
    return scheme.target(key.kind, key.name) if key.cluster_scoped else None


def holder_for(request: AdmissionRequest, lease: LeaseLookupResult, policy: DecisionPolicy,
               now: datetime) -> HolderRef | None:
    """The holder record :func:`decide` needs, or None: only a live Lease's, under a profile that
    has one, for a requester that could be its identity (a service account of the Lease's namespace).
    """
    record = policy.lock.lock_profile.holder_record
    if record is None or not isinstance(lease, LeaseState) or lease.members is not None or not lease.holder:
        return None
    if not lease.is_live(now, policy.lock.clock_skew_seconds) or not record.may_be(request.username, lease.namespace):
        return None
    return HolderRef(lease.namespace, lease.holder)


def strictest(outcomes: Sequence[Outcome]) -> Outcome:
    """The outcome of a write judged against several Leases: the first that refuses, else the first."""
    return next((o for o in outcomes if o.refuses), outcomes[0])


def trusts_cache(request: AdmissionRequest, cached: LeaseLookupResult, policy: DecisionPolicy,
                 now: datetime) -> bool:
    """Whether a cached lookup may decide ``request``; False means read the Lease consistently.

    The marker makes the cache exact: an object marked ``H`` was stamped after
    H's Lease was committed, so a cache that shows H's live Lease agrees with
    the API server. A cache that does not (a Lease too new for the watch, or
    one released since), a create (no marker to compare yet), a ``scale``
    (a Scale has no labels) and a write that changes the marker are read
    fresh. So is every write of an identity-bound lock's object: the marker
    says nothing about its members, and a member removed must be refused
    from the instant the change returns (one GET per such write; other
    objects keep the cache). Profiles that do not fence keep the cache.
    """
    if isinstance(cached, LeaseState) and cached.identity_bound:
        return False
    if not policy.lock.lock_profile.fences:
        return True
    if request.operation == "CREATE" or request.sub_resource == "scale":
        return False
    marker = request.old_labels.get(LOCKED_LABEL, "")
    if request.operation == "UPDATE" and request.new_labels.get(LOCKED_LABEL, "") != marker:
        return False
    if not marker:
        return True
    return isinstance(cached, LeaseState) and cached.holder == marker \
        and cached.is_live(now, policy.lock.clock_skew_seconds)


def decide(request: AdmissionRequest, lease: LeaseLookupResult, policy: DecisionPolicy,
           now: datetime, holder: HolderLookupResult = NOT_LOOKED_UP) -> Outcome:
    """Judge ``request`` against the looked-up ``lease`` at ``now``.

    ``holder`` is the holder record's identity when :func:`holder_for` asked
    for one. Pure and total: never raises for any request the parser produces.
    """
    screened = _screen(request, policy)
    if screened is not None:
        return Outcome(screened)
    if is_lease_write(request):
        return judge_lease_write(request, policy, now)
    target = _target(request, policy)
    if isinstance(target, Reason):
        return Outcome(target)
    ref, declared = target, _declared_txn(request, policy)
    if isinstance(lease, LookupFailed):
        return Outcome(Reason.LOOKUP_FAILED, lease=ref, declared_txn=declared,
                       message=(f"leasegate could not read lock lease {ref} for {_describe(request)} "
                                f"({lease.error})"))
    if isinstance(lease, LeaseAbsent):
        return Outcome(Reason.UNLOCKED, lease=ref, declared_txn=declared)
    ref = LeaseRef(lease.namespace, lease.name) if lease.namespace and lease.name else ref
    if not lease.is_live(now, policy.lock.clock_skew_seconds):
        return Outcome(Reason.EXPIRED, lease=ref, holder=lease.holder, declared_txn=declared)
    reason = _marker(request, lease, policy) or _proof(request, lease, policy, declared, holder)
    left = lease.seconds_left(now)
    if reason.blocks and isinstance(holder, LookupFailed):
        return Outcome(Reason.LOOKUP_FAILED, lease=ref, holder=lease.holder, declared_txn=declared,
                       message=(f"leasegate could not read the record of transaction {lease.holder!r} "
                                f"holding lock lease {ref} for {_describe(request)} ({holder.error})"))
    message = _blocked_message(request, ref, lease, reason, policy, declared, left) if reason.blocks else ""
    return Outcome(reason, message=message, lease=ref, holder=lease.holder, declared_txn=declared,
                   seconds_left=left)


def _declared_txn(request: AdmissionRequest, policy: DecisionPolicy) -> str:
    """The transaction the request claims: new object's annotation, or the stored one for DELETE."""
    annotations = request.old_annotations if request.operation == "DELETE" else request.new_annotations
    return annotations.get(policy.lock.txn_annotation, "")


def _marker(request: AdmissionRequest, lease: LeaseState, policy: DecisionPolicy) -> Reason | None:
    """A create or update of a locked object must leave it marked with the holder (else blocked),
    and may record beside the marker no principal but the Lease's.

    Without the marker the API server would stop calling the webhook for the
    object (objectSelector), so removing it while the lock is live would
    unlock the object: nobody may, the holder included (release deletes the
    Lease first, then removes the marker).
    """
    if not policy.lock.lock_profile.fences or request.operation == "DELETE" or request.sub_resource == "scale":
        return None
    if request.new_labels.get(LOCKED_LABEL) != lease.holder:
        return Reason.MARKER_MISSING
    # The principal recorded beside the marker may remove it without a webhook
    # call (release): nobody may record anyone but the Lease's principal there.
    recorded = request.new_annotations.get(PRINCIPAL_ANNOTATION, "")
    before = request.old_annotations.get(PRINCIPAL_ANNOTATION, "") if request.operation == "UPDATE" else ""
    return None if recorded in (before, lease.principal) else Reason.PRINCIPAL_MARK_CHANGED


def _proof(request: AdmissionRequest, lease: LeaseState, policy: DecisionPolicy,
           declared: str, holder: HolderLookupResult) -> Reason:
    """Rule 6: does the request prove it belongs to the holding transaction?

    * Under a profile with a holder record, the requester being the identity
      H's record names (authenticated by the API server, unlike a field
      manager or an annotation) proves it, for every kind of write.
    * A ``scale`` (a Scale carries no annotation) by the principal the Lease
      records as having acquired it proves it, and so does the principal's
      write that sets the marker (acquire's stamp).
    * The declared annotation must equal H. It proves the transaction by
      itself when the request *sets* it: a CREATE, or an UPDATE whose stored
      object did not carry ``H``.
    * A value carried over unchanged (UPDATE with the stored object already
      carrying H, and every DELETE, whose annotation is on the stored object)
      is what any unaware read-modify-write keeps, so it proves the
      transaction only when the requester is the recorded principal. Under a
      profile that records no principal a DELETE is accepted on the
      stored annotation alone, since a delete has no other way to declare
      itself; a carried-over UPDATE never is.
    """
    if lease.members is not None:
        return _member_proof(request, lease, lease.members, policy, declared)
    profile, holder_txn = policy.lock.lock_profile, lease.holder
    if _is_holder(request, lease, holder, profile.holder_record):
        return Reason.HOLDER_IDENTITY
    principal = bool(lease.principal) and request.username == lease.principal
    if request.sub_resource == "scale" and principal:
        return Reason.PRINCIPAL_SCALE
    if principal and request.operation == "UPDATE" and request.old_labels.get(LOCKED_LABEL) != holder_txn:
        return Reason.PRINCIPAL_STAMP  # acquire's stamp (it reached _proof, so it sets the marker to H)
    if declared != holder_txn:
        return Reason.OTHER_TRANSACTION if declared else Reason.NOT_IN_TRANSACTION
    if not _carried(request, policy, holder_txn):
        return Reason.IN_TRANSACTION
    if principal:
        return Reason.PRINCIPAL_CARRIED_OVER
    if not profile.records_principal and request.operation == "DELETE":
        return Reason.IN_TRANSACTION
    return Reason.CARRIED_OVER


def _is_holder(request: AdmissionRequest, lease: LeaseState, holder: HolderLookupResult,
               record: HolderRecord | None) -> bool:
    """The requester is the identity the holder's record names (an account of the Lease's own namespace)."""
    return record is not None and isinstance(holder, HolderIdentity) and bool(holder.username) \
        and request.username == holder.username and record.may_be(request.username, lease.namespace)


def _carried(request: AdmissionRequest, policy: DecisionPolicy, holder: str) -> bool:
    """The declared ``holder`` is the stored object's (every DELETE; an UPDATE that keeps it), not set by this write."""
    return request.operation == "DELETE" or (
        request.operation == "UPDATE" and request.old_annotations.get(policy.lock.txn_annotation) == holder)


def _member_proof(request: AdmissionRequest, lease: LeaseState, members: Members, policy: DecisionPolicy,
                  declared: str) -> Reason:
    """Rule 6 for an identity-bound lock: the requester must be a member, then belong to the transaction.

    Membership is the API server's authentication (username, or one of the
    request's groups), which no write can claim. A member still declares the
    transaction by the annotation (set by the write, or carried over: any
    member's read-modify-write is the transaction's); a DELETE and a
    ``scale`` carry nothing to declare, so membership is their proof. An
    unreadable members annotation admits nobody.
    """
    if not members.admits(request.username, request.groups):
        return Reason.NOT_A_MEMBER
    if request.operation == "DELETE":
        return Reason.MEMBER_DELETE
    if request.sub_resource == "scale":
        return Reason.MEMBER_SCALE
    if request.username == lease.principal and request.operation == "UPDATE" \
            and request.old_labels.get(LOCKED_LABEL) != lease.holder:
        return Reason.PRINCIPAL_STAMP
    if declared != lease.holder:
        return Reason.OTHER_TRANSACTION if declared else Reason.NOT_IN_TRANSACTION
    return Reason.MEMBER_CARRIED_OVER if _carried(request, policy, lease.holder) else Reason.IN_TRANSACTION


def _describe(request: AdmissionRequest) -> str:
    sub = f" ({request.sub_resource})" if request.sub_resource else ""
    namespace = "" if (request.resource_group, request.resource) == NAMESPACES else request.namespace
    return describe_object(request.group, request.kind, namespace, request.name) + sub


def _blocked_message(request: AdmissionRequest, ref: LeaseRef, lease: LeaseState, reason: Reason,
                     policy: DecisionPolicy, declared: str, left: float) -> str:
    holder = lease.holder
    head = (f"{_describe(request)} is locked by transaction {holder!r} "
            f"(lease {ref}, expires in {max(left, 0):.0f}s)")
    return f"{head}: {_why(request, lease, reason, policy, declared)}; {_how(request, lease, reason, policy)}"


def _why(request: AdmissionRequest, lease: LeaseState, reason: Reason, policy: DecisionPolicy,
         declared: str) -> str:
    key, holder = policy.lock.txn_annotation, lease.holder
    if reason is Reason.NOT_A_MEMBER:
        return (f"the lock is identity-bound and {describe_requester(request)} is not one of its "
                f"members{disclosed_members(lease, policy)}")
    if reason is Reason.MARKER_MISSING:
        return f"this {request.operation} would leave the object without label {LOCKED_LABEL}={holder}"
    if reason is Reason.PRINCIPAL_MARK_CHANGED:
        return (f"this {request.operation} would record annotation {PRINCIPAL_ANNOTATION}="
                f"{request.new_annotations.get(PRINCIPAL_ANNOTATION, '')!r}, but only {lease.principal!r} "
                f"took the lock")
    if reason is Reason.OTHER_TRANSACTION:
        return f"this {request.operation} declares transaction {declared!r}"
    if reason is Reason.CARRIED_OVER:
        who = f"user {lease.principal!r}" if lease.principal else "nobody (no principal recorded)"
        return (f"annotation {key}={holder} was carried over from the stored object, which proves "
                f"the transaction only for {who} who acquired the lock, not {request.username!r}")
    if request.sub_resource == "scale":
        who = f"user {lease.principal!r}" if lease.principal else "nobody"
        return f"a scale carries no annotation, so only {who} who acquired the lock may scale it"
    return f"this {request.operation} declares no transaction"


def _how(request: AdmissionRequest, lease: LeaseState, reason: Reason, policy: DecisionPolicy) -> str:
    key, holder = policy.lock.txn_annotation, lease.holder
    if reason is Reason.NOT_A_MEMBER:
        target = resource_key(request).describe()
        return (f"to be added, ask a member of transaction {holder!r} to run `kubectl lock members add {target} "
                f"--txn {holder} --member {describe_requester(request)}`, or wait for the lock to be released")
    if reason is Reason.PRINCIPAL_MARK_CHANGED:
        return f"leave annotation {PRINCIPAL_ANNOTATION} as it is while the lock is held"
    if reason is Reason.MARKER_MISSING:
        return (f"keep label {LOCKED_LABEL}={holder} (and set annotation {key}={holder}) while the lock "
                f"is held; releasing the lock removes the label")
    record = policy.lock.lock_profile.holder_record
    if record is not None:
        return (f"only the identity that transaction {holder!r} runs as ({record.plural}.{record.group} "
                f"{lease.namespace}/{holder}) or a write setting annotation {key}={holder} belongs to it; "
                f"wait for the lock to be released")
    if request.operation == "DELETE":
        return (f"to delete as part of the transaction, first set annotation {key}={holder} on the "
                f"object as {lease.principal or 'the lock holder'}, then delete")
    return (f"to write as part of the transaction, set annotation {key}={holder} in this write "
            f"(e.g. `kubectl lock` helpers stamp it), or wait for the lock to be released")
