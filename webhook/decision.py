"""The lock decision: pure functions from a request and a Lease to a verdict.

Judgement and enforcement are kept apart:

* :func:`decide` says what the lock says of a write: an :class:`Outcome`
  that is allowed (with the reason), blocked (with the reason and a message
  naming the holder and the way out) or a failed lookup. It knows nothing of
  modes or HTTP.
* :func:`enforce` says what an outcome means under an :class:`Enforcement`
  (deny | warn | dryrun, ``lookup_failure_policy``): the :class:`Verdict`, with
  the HTTP code and status reason, in one place.

Neither does I/O, so both are tested exhaustively by tables and property
tests; the app only fetches the Lease that :func:`lease_for` names (freshly
where :func:`trusts_cache` says the cache cannot be trusted) and reports.

Rules of :func:`decide`, in order (the first that applies wins; docs/webhook.md):

1. CONNECT requests, exempt users, groups and namespaces, ``status`` writes
   that change nothing outside ``.status`` (:attr:`AdmissionRequest.status_only`)
   are allowed without a lookup.
2. A write to a lock Lease is judged on the stored Lease itself
   (:func:`_lease_write`): while it is live only its recorded principal (for
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
   requester to be a member (:func:`_member_proof`).

Example::

    >>> from datetime import datetime, timezone
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

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from lockcore.kube import LEASES, LOCKED_LABEL, NAMESPACES
from lockcore.lease import LeaseState
from lockcore.members import MEMBERS_ANNOTATION, Members
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey, describe_object, lease_ref
from webhook.review import AdmissionRequest
from webhook.settings import DecisionPolicy, Enforcement, EnforcementMode, FailurePolicy

FORBIDDEN = 403
UNAVAILABLE = 503
# 403 is what admission denials normally carry, and what no standard client
# retries: 409 made kubectl scale, client-side apply and RetryOnConflict loops
# re-send the write as if it were a resourceVersion conflict.
_STATUS_REASONS = {FORBIDDEN: "Forbidden", UNAVAILABLE: "ServiceUnavailable"}
# Parents whose /scale subresource the webhook can map back to a lock key
# (the Scale object names neither the parent kind nor its annotations).
SCALE_PARENTS: dict[tuple[str, str], str] = {
    ("apps", "deployments"): "Deployment",
    ("apps", "replicasets"): "ReplicaSet",
    ("apps", "statefulsets"): "StatefulSet",
    ("", "replicationcontrollers"): "ReplicationController",
}


class Reason(str, enum.Enum):
    """Why an outcome came out as it did (a metric label and an audit field)."""

    CONNECT = "connect"
    LOCK_LEASE = "lock-lease"
    LEASE_HOLDER = "lease-holder"
    LEASE_ADMIN = "lease-admin"
    EXEMPT_USER = "exempt-user"
    EXEMPT_GROUP = "exempt-group"
    EXEMPT_NAMESPACE = "exempt-namespace"
    STATUS_SUBRESOURCE = "status-subresource"
    NO_NAME = "no-name"
    UNLOCKABLE = "unlockable"
    FINALIZER_REMOVAL = "finalizer-removal"
    UNLOCKED = "unlocked"
    EXPIRED = "expired"
    IN_TRANSACTION = "in-transaction"
    JANUS_FIELD_MANAGER = "janus-field-manager"
    PRINCIPAL_CARRIED_OVER = "principal-carried-over"
    PRINCIPAL_SCALE = "principal-scale"
    PRINCIPAL_STAMP = "principal-stamp"
    MEMBER_CARRIED_OVER = "member-carried-over"
    MEMBER_DELETE = "member-delete"
    MEMBER_SCALE = "member-scale"
    LEASE_MEMBER = "lease-member"
    NOT_A_MEMBER = "not-a-member"
    LEASE_NOT_MEMBER = "lease-not-member"
    MEMBERS_INVALID = "members-invalid"
    MEMBERS_REQUIRED = "members-required"
    NOT_IN_TRANSACTION = "not-in-transaction"
    OTHER_TRANSACTION = "other-transaction"
    CARRIED_OVER = "carried-over-not-principal"
    MARKER_MISSING = "marker-missing"
    LEASE_NOT_HOLDER = "lease-not-holder"
    LOOKUP_FAILED = "lookup-failed"

    @property
    def blocks(self) -> bool:
        """Whether this reason means the lock forbids the write."""
        return self in _BLOCKING


_BLOCKING = frozenset({Reason.NOT_IN_TRANSACTION, Reason.OTHER_TRANSACTION, Reason.CARRIED_OVER,
                       Reason.MARKER_MISSING, Reason.LEASE_NOT_HOLDER, Reason.NOT_A_MEMBER,
                       Reason.LEASE_NOT_MEMBER, Reason.MEMBERS_INVALID, Reason.MEMBERS_REQUIRED})


@dataclass(frozen=True)
class LeaseAbsent:
    """The lookup found no Lease for the object."""


@dataclass(frozen=True)
class LookupFailed:
    """The Lease could not be read (API error, timeout); ``error`` says why."""

    error: str


ABSENT = LeaseAbsent()
LeaseLookupResult = LeaseAbsent | LeaseState | LookupFailed


@dataclass(frozen=True)
class Outcome:
    """What the lock says of one write, before any enforcement mode.

    ``message`` explains a block or a failed lookup (empty when allowed).
    """

    reason: Reason
    message: str = ""
    lease: LeaseRef | None = None
    holder: str = ""
    declared_txn: str = ""
    seconds_left: float = 0.0

    @property
    def refuses(self) -> bool:
        """Blocked by a lock, or not judged because the Lease could not be read."""
        return self.reason.blocks or self.reason is Reason.LOOKUP_FAILED


@dataclass(frozen=True)
class Verdict:
    """The answer to one admission request.

    ``allowed``/``code``/``status_reason``/``message``/``warnings`` go to the
    AdmissionResponse. ``would_deny`` is true when deny mode refuses (or
    refused) the write: a lock forbids it, or a failed lookup under policy
    deny; warn and dryrun mode audit such writes as would-be denials.
    """

    allowed: bool
    reason: Reason
    mode: EnforcementMode
    code: int = 200
    status_reason: str = ""
    message: str = ""
    warnings: tuple[str, ...] = ()
    lease: LeaseRef | None = None
    holder: str = ""
    declared_txn: str = ""
    seconds_left: float = 0.0
    would_deny: bool = False

    @property
    def decision(self) -> str:
        """allow | deny | warn | dryrun: what happened, for logs and metrics."""
        if not self.allowed:
            return "deny"
        return self.mode.value if self.would_deny else "allow"


def enforce(outcome: Outcome, enforcement: Enforcement) -> Verdict:
    """What ``outcome`` means under ``enforcement``: the one place modes and HTTP codes live.

    >>> enforce(Outcome(Reason.NOT_IN_TRANSACTION, "locked"), Enforcement()).code
    403
    """
    mode = enforcement.mode
    allowed = Verdict(allowed=True, reason=outcome.reason, mode=mode, lease=outcome.lease, holder=outcome.holder,
                      declared_txn=outcome.declared_txn, seconds_left=outcome.seconds_left)
    if not outcome.refuses:
        return allowed
    message, code = outcome.message, FORBIDDEN
    if outcome.reason is Reason.LOOKUP_FAILED:
        policy = enforcement.lookup_failure_policy
        message = f"{message}; lookup_failure_policy={policy.value}"
        if policy is FailurePolicy.ALLOW:
            return replace(allowed, warnings=(f"{message}: write allowed unchecked",))
        message, code = f"{message}: write refused, retry later", UNAVAILABLE
    if mode is EnforcementMode.DENY:
        return replace(allowed, allowed=False, code=code, status_reason=_STATUS_REASONS[code], message=message,
                       would_deny=True)
    warnings = (f"leasegate ({mode.value} mode, not enforced): {message}",) if mode is EnforcementMode.WARN else ()
    return replace(allowed, warnings=warnings, would_deny=True)


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
           now: datetime) -> Outcome:
    """Judge ``request`` against the looked-up ``lease`` at ``now``.

    Pure and total: never raises for any request the parser produces.
    """
    screened = _screen(request, policy)
    if screened is not None:
        return Outcome(screened)
    if is_lease_write(request):
        return _lease_write(request, policy, now)
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
    if not lease.is_live(now, policy.lock.clock_skew_seconds):
        return Outcome(Reason.EXPIRED, lease=ref, holder=lease.holder, declared_txn=declared)
    reason = _marker(request, lease, policy) or _proof(request, lease, policy, declared)
    left = lease.seconds_left(now)
    message = _blocked_message(request, ref, lease, reason, policy, declared, left) if reason.blocks else ""
    return Outcome(reason, message=message, lease=ref, holder=lease.holder, declared_txn=declared,
                   seconds_left=left)


def _declared_txn(request: AdmissionRequest, policy: DecisionPolicy) -> str:
    """The transaction the request claims: new object's annotation, or the stored one for DELETE."""
    annotations = request.old_annotations if request.operation == "DELETE" else request.new_annotations
    return annotations.get(policy.lock.txn_annotation, "")


def _marker(request: AdmissionRequest, lease: LeaseState, policy: DecisionPolicy) -> Reason | None:
    """A create or update of a locked object must leave it marked with the holder (else blocked).

    Without the marker the API server would stop calling the webhook for the
    object (objectSelector), so removing it while the lock is live would
    unlock the object: nobody may, the holder included (release deletes the
    Lease first, then removes the marker).
    """
    if not policy.lock.lock_profile.fences or request.operation == "DELETE" or request.sub_resource == "scale":
        return None
    return None if request.new_labels.get(LOCKED_LABEL) == lease.holder else Reason.MARKER_MISSING


def _proof(request: AdmissionRequest, lease: LeaseState, policy: DecisionPolicy,
           declared: str) -> Reason:
    """Rule 6: does the request prove it belongs to the holding transaction?

    * The janus profile's field manager ``janus-<H>`` (when enabled) proves it.
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
      profile that records no principal (janus) a DELETE is accepted on the
      stored annotation alone, since a delete has no other way to declare
      itself; a carried-over UPDATE never is.
    """
    if lease.members is not None:
        return _member_proof(request, lease, lease.members, policy, declared)
    holder, profile = lease.holder, policy.lock.lock_profile
    if policy.janus_field_manager and request.field_manager == f"janus-{holder}":
        return Reason.JANUS_FIELD_MANAGER
    principal = bool(lease.principal) and request.username == lease.principal
    if request.sub_resource == "scale" and principal:
        return Reason.PRINCIPAL_SCALE
    if principal and request.operation == "UPDATE" and request.old_labels.get(LOCKED_LABEL) != holder:
        return Reason.PRINCIPAL_STAMP  # acquire's stamp (it reached _proof, so it sets the marker to H)
    if declared != holder:
        return Reason.OTHER_TRANSACTION if declared else Reason.NOT_IN_TRANSACTION
    if not _carried(request, policy, holder):
        return Reason.IN_TRANSACTION
    if principal:
        return Reason.PRINCIPAL_CARRIED_OVER
    if not profile.records_principal and request.operation == "DELETE":
        return Reason.IN_TRANSACTION
    return Reason.CARRIED_OVER


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


def _lease_write(request: AdmissionRequest, policy: DecisionPolicy, now: datetime) -> Outcome:
    """Rule 2: a live lock Lease is changed or deleted only by its principal (its members) or a lock admin.

    Anyone else could otherwise delete another transaction's lock and then
    write the object, or add themselves to its members. Expired Leases may
    be taken over as ever; a Lease that is no lock (no transaction label, or
    neither principal nor members recorded: janus) is not ours to guard.
    Whoever may write it, what it would store is judged too
    (:func:`_written_members`).
    """
    stored = request.old_lease
    label = policy.lock.lock_profile.txn_label
    try:
        ref: LeaseRef | None = LeaseRef(request.namespace, request.name)
    except InvalidKeyError:
        ref = None
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
    if any(g in policy.lock_admin_groups for g in request.groups):
        return replace(expired, reason=Reason.LEASE_ADMIN)
    return writer


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
            f"release it or change its members, and {_requester(request)} is not one{_members_shown(stored, policy)}; "
            f"an administrator in a lock admin group ({admins}) can force-release it (`kubectl lock force-release`)")


def _requester(request: AdmissionRequest) -> str:
    return Members(users=(request.username,)).specs()[0] if request.username else "an anonymous user"


def _members_shown(lease: LeaseState, policy: DecisionPolicy) -> str:
    """The members, for a refusal, only where the cluster chose to disclose them (``disclose_members``)."""
    if not policy.disclose_members or lease.members is None:
        return ""
    return f" (members: {', '.join(lease.members.specs()) or 'none readable'})"


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
        return (f"the lock is identity-bound and {_requester(request)} is not one of its "
                f"members{_members_shown(lease, policy)}")
    if reason is Reason.MARKER_MISSING:
        return f"this {request.operation} would leave the object without label {LOCKED_LABEL}={holder}"
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
                f"--txn {holder} --member {_requester(request)}`, or wait for the lock to be released")
    if reason is Reason.MARKER_MISSING:
        return (f"keep label {LOCKED_LABEL}={holder} (and set annotation {key}={holder}) while the lock "
                f"is held; releasing the lock removes the label")
    if request.operation == "DELETE":
        return (f"to delete as part of the transaction, first set annotation {key}={holder} on the "
                f"object as {lease.principal or 'the lock holder'}, then delete")
    return (f"to write as part of the transaction, set annotation {key}={holder} in this write "
            f"(e.g. `kubectl lock` helpers stamp it), or wait for the lock to be released")
