"""The lock decision: one pure function from a request and a Lease to a verdict.

:func:`decide` holds every rule of docs/webhook.md ("Decision rules"); it does
no I/O, so it is tested exhaustively by tables and property tests, and the app
only fetches the Lease that :func:`lease_for` names and reports the verdict.

Rules, in order (the first that applies wins):

1. CONNECT requests, writes to ``coordination.k8s.io`` Leases (the locks
   themselves; locking a lock could only deadlock), exempt users, groups and
   namespaces, and ``status`` subresource writes are allowed without a lookup.
2. A create whose name is not known yet (``generateName``) is allowed: no lock
   can name an object that does not exist.
3. An update that only removes finalizers of an object being deleted is
   allowed, so a deletion never hangs on a lock.
4. No Lease, or an expired one (``LeaseState.is_live`` with the configured
   clock-skew margin): allowed.
5. The Lease cannot be read: ``lookup_failure_policy`` (allow | deny), said in
   the response.
6. A live Lease held by transaction H: allowed only with proof (see
   :func:`_proof`); otherwise the write is *blocked*, and the enforcement mode
   says what a block means (deny: HTTP 409; warn: allowed with a warning;
   dryrun: allowed, audited).

Example::

    >>> from datetime import datetime, timezone
    >>> from webhook.review import AdmissionRequest
    >>> from webhook.settings import WebhookSettings
    >>> req = AdmissionRequest(uid="u", operation="UPDATE", group="", version="v1",
    ...                        kind="ConfigMap", resource="configmaps", namespace="shop",
    ...                        name="cfg", username="bob")
    >>> v = decide(req, ABSENT, WebhookSettings(), datetime.now(timezone.utc))
    >>> v.allowed, v.reason.value
    (True, 'unlocked')
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from lockcore.lease import LeaseState
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey, describe_object, lease_ref
from webhook.review import AdmissionRequest
from webhook.settings import EnforcementMode, FailurePolicy, WebhookSettings

LEASE_GROUP = "coordination.k8s.io"
LEASE_RESOURCE = "leases"
CONFLICT = 409
UNAVAILABLE = 503
# Parents whose /scale subresource the webhook can map back to a lock key
# (the Scale object names neither the parent kind nor its annotations).
SCALE_PARENTS: dict[tuple[str, str], str] = {
    ("apps", "deployments"): "Deployment",
    ("apps", "replicasets"): "ReplicaSet",
    ("apps", "statefulsets"): "StatefulSet",
    ("", "replicationcontrollers"): "ReplicationController",
}


class Reason(str, enum.Enum):
    """Why a verdict came out as it did (a metric label and an audit field)."""

    CONNECT = "connect"
    LOCK_LEASE = "lock-lease"
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
    NOT_IN_TRANSACTION = "not-in-transaction"
    OTHER_TRANSACTION = "other-transaction"
    CARRIED_OVER = "carried-over-not-principal"
    LOOKUP_FAILED = "lookup-failed"

    @property
    def blocks(self) -> bool:
        """Whether this reason means the lock forbids the write."""
        return self in _BLOCKING


_BLOCKING = frozenset({Reason.NOT_IN_TRANSACTION, Reason.OTHER_TRANSACTION, Reason.CARRIED_OVER})


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
class Verdict:
    """The answer to one admission request.

    ``allowed``/``code``/``message``/``warnings`` go to the AdmissionResponse.
    ``would_deny`` is true when deny mode refuses (or refused) the write: a
    lock forbids it, or a failed lookup under policy deny; warn and dryrun
    mode audit such writes as would-be denials.
    """

    allowed: bool
    reason: Reason
    mode: EnforcementMode
    code: int = 200
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
    namespace = "" if (request.resource_group, request.resource) == ("", "namespaces") else request.namespace
    return ResourceKey(group=request.group, kind=kind, namespace=namespace, name=request.name)


def _screen(request: AdmissionRequest, settings: WebhookSettings) -> Verdict | LeaseRef:
    """Rules 1-3: a verdict that needs no Lease, or the Lease to look up."""
    mode = settings.mode

    def allow(reason: Reason) -> Verdict:
        return Verdict(allowed=True, reason=reason, mode=mode)

    if request.operation == "CONNECT":
        return allow(Reason.CONNECT)
    if request.resource_group == LEASE_GROUP and request.resource == LEASE_RESOURCE:
        return allow(Reason.LOCK_LEASE)
    if request.username in settings.exempt_users:
        return allow(Reason.EXEMPT_USER)
    if any(g in settings.exempt_groups for g in request.groups):
        return allow(Reason.EXEMPT_GROUP)
    if request.namespace and request.namespace in settings.exempt_namespaces \
            and (request.resource_group, request.resource) != ("", "namespaces"):
        return allow(Reason.EXEMPT_NAMESPACE)
    if request.sub_resource == "status":
        return allow(Reason.STATUS_SUBRESOURCE)
    if not request.name:
        return allow(Reason.NO_NAME)
    if request.finalizer_removal_only:
        return allow(Reason.FINALIZER_REMOVAL)
    try:
        return lease_ref(resource_key(request), settings.lock)
    except InvalidKeyError:
        return allow(Reason.UNLOCKABLE)


def lease_for(request: AdmissionRequest, settings: WebhookSettings) -> LeaseRef | None:
    """The Lease that :func:`decide` needs for ``request``, or None if none is needed."""
    screened = _screen(request, settings)
    return screened if isinstance(screened, LeaseRef) else None


def decide(
    request: AdmissionRequest,
    lease: LeaseLookupResult,
    settings: WebhookSettings,
    now: datetime,
    *,
    mode: EnforcementMode | None = None,
) -> Verdict:
    """Judge ``request`` against the looked-up ``lease`` at ``now``.

    ``mode`` overrides ``settings.mode`` (the per-namespace label). Pure and
    total: never raises for any request the parser produces.
    """
    if mode is not None and mode is not settings.mode:
        settings = replace(settings, mode=mode)  # rare: a namespace label overrides the mode
    screened = _screen(request, settings)
    if isinstance(screened, Verdict):
        return screened
    ref = screened
    mode = settings.mode
    declared = _declared_txn(request, settings)
    if isinstance(lease, LookupFailed):
        return _lookup_failed(request, ref, lease, settings, declared)
    if isinstance(lease, LeaseAbsent):
        return Verdict(allowed=True, reason=Reason.UNLOCKED, mode=mode, lease=ref, declared_txn=declared)
    if not lease.is_live(now, settings.lock.clock_skew_seconds):
        return Verdict(allowed=True, reason=Reason.EXPIRED, mode=mode, lease=ref,
                       holder=lease.holder, declared_txn=declared)
    left = lease.seconds_left(now)
    outcome = _proof(request, lease, settings, declared)
    if not outcome.blocks:
        return Verdict(allowed=True, reason=outcome, mode=mode, lease=ref, holder=lease.holder,
                       declared_txn=declared, seconds_left=left)
    message = _blocked_message(request, ref, lease, outcome, settings, declared, left)
    if mode is EnforcementMode.DENY:
        return Verdict(allowed=False, reason=outcome, mode=mode, code=CONFLICT, message=message,
                       lease=ref, holder=lease.holder, declared_txn=declared, seconds_left=left,
                       would_deny=True)
    warnings = (f"leasegate ({mode.value} mode, not enforced): {message}",) if mode is EnforcementMode.WARN else ()
    return Verdict(allowed=True, reason=outcome, mode=mode, warnings=warnings, lease=ref,
                   holder=lease.holder, declared_txn=declared, seconds_left=left, would_deny=True)


def _declared_txn(request: AdmissionRequest, settings: WebhookSettings) -> str:
    """The transaction the request claims: new object's annotation, or the stored one for DELETE."""
    annotations = request.old_annotations if request.operation == "DELETE" else request.new_annotations
    return annotations.get(settings.lock.txn_annotation, "")


def _proof(request: AdmissionRequest, lease: LeaseState, settings: WebhookSettings,
           declared: str) -> Reason:
    """Rule 6: does the request prove it belongs to the holding transaction?

    * The janus profile's field manager ``janus-<H>`` (when enabled) proves it.
    * The declared annotation must equal H. It proves the transaction by
      itself when the request *sets* it: a CREATE, or an UPDATE whose stored
      object did not carry ``H``.
    * A value carried over unchanged (UPDATE with the stored object already
      carrying H, and every DELETE, whose annotation is on the stored object)
      is what any unaware read-modify-write keeps, so it proves the
      transaction only when the requester is the principal the Lease records
      as having acquired it. A Lease without a recorded principal (janus
      Leases) accepts a DELETE on the stored annotation alone, since a delete
      has no other way to declare itself; it never accepts a carried-over
      UPDATE.
    """
    holder = lease.holder
    if settings.janus_field_manager and request.field_manager == f"janus-{holder}":
        return Reason.JANUS_FIELD_MANAGER
    if declared != holder:
        return Reason.OTHER_TRANSACTION if declared else Reason.NOT_IN_TRANSACTION
    carried = request.operation == "DELETE" or (
        request.operation == "UPDATE" and request.old_annotations.get(settings.lock.txn_annotation) == holder
    )
    if not carried:
        return Reason.IN_TRANSACTION
    if lease.principal and request.username == lease.principal:
        return Reason.PRINCIPAL_CARRIED_OVER
    if not lease.principal and request.operation == "DELETE":
        return Reason.IN_TRANSACTION
    return Reason.CARRIED_OVER


def _describe(request: AdmissionRequest) -> str:
    sub = f" ({request.sub_resource})" if request.sub_resource else ""
    return describe_object(request.group, request.kind, request.namespace, request.name) + sub


def _blocked_message(request: AdmissionRequest, ref: LeaseRef, lease: LeaseState, reason: Reason,
                     settings: WebhookSettings, declared: str, left: float) -> str:
    holder, key = lease.holder, settings.lock.txn_annotation
    head = (f"{_describe(request)} is locked by transaction {holder!r} "
            f"(lease {ref}, expires in {max(left, 0):.0f}s)")
    if reason is Reason.OTHER_TRANSACTION:
        why = f"this {request.operation} declares transaction {declared!r}"
    elif reason is Reason.CARRIED_OVER:
        who = f"user {lease.principal!r}" if lease.principal else "nobody (no principal recorded)"
        why = (f"annotation {key}={holder} was carried over from the stored object, which proves "
               f"the transaction only for {who} who acquired the lock, not {request.username!r}")
    else:
        why = f"this {request.operation} declares no transaction"
    if request.operation == "DELETE":
        how = (f"to delete as part of the transaction, first set annotation {key}={holder} on the "
               f"object as {lease.principal or 'the lock holder'}, then delete")
    else:
        how = (f"to write as part of the transaction, set annotation {key}={holder} in this write "
               f"(e.g. `kubectl lock` helpers stamp it), or wait for the lock to be released")
    return f"{head}: {why}; {how}"


def _lookup_failed(request: AdmissionRequest, ref: LeaseRef, failure: LookupFailed,
                   settings: WebhookSettings, declared: str) -> Verdict:
    policy = settings.lookup_failure_policy
    mode = settings.mode
    message = (f"leasegate could not read lock lease {ref} for {_describe(request)} "
               f"({failure.error}); lookup_failure_policy={policy.value}")
    if policy is FailurePolicy.ALLOW:
        return Verdict(allowed=True, reason=Reason.LOOKUP_FAILED, mode=mode,
                       warnings=(f"{message}: write allowed unchecked",), lease=ref,
                       declared_txn=declared)
    if mode is EnforcementMode.DENY:
        return Verdict(allowed=False, reason=Reason.LOOKUP_FAILED, mode=mode, code=UNAVAILABLE,
                       message=f"{message}: write refused, retry later", lease=ref,
                       declared_txn=declared, would_deny=True)
    warnings = (f"leasegate ({mode.value} mode): {message}",) if mode is EnforcementMode.WARN else ()
    return Verdict(allowed=True, reason=Reason.LOOKUP_FAILED, mode=mode, warnings=warnings,
                   lease=ref, declared_txn=declared, would_deny=True)
