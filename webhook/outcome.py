"""What the lock says of a write, and what an enforcement mode makes of it.

* :class:`Outcome` is :func:`webhook.decision.decide`'s answer: allowed (with
  the :class:`Reason`), blocked (with the reason and a message naming the
  holder and the way out) or a failed lookup. It knows nothing of modes.
* :func:`enforce` turns an outcome into the :class:`Verdict` under an
  :class:`~webhook.settings.Enforcement` (deny | warn | dryrun,
  ``lookup_failure_policy``): the HTTP code and status reason live here, once.

Example::

    >>> enforce(Outcome(Reason.NOT_IN_TRANSACTION, "locked"), Enforcement()).status_reason
    'Forbidden'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from lockcore.lease import LeaseState
from lockcore.naming import LeaseRef
from webhook.settings import Enforcement, EnforcementMode, FailurePolicy

FORBIDDEN = 403
UNAVAILABLE = 503
# 403 is what admission denials normally carry, and what no standard client
# retries: 409 made kubectl scale, client-side apply and RetryOnConflict loops
# re-send the write as if it were a resourceVersion conflict.
_STATUS_REASONS = {FORBIDDEN: "Forbidden", UNAVAILABLE: "ServiceUnavailable"}
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
    HOLDER_IDENTITY = "holder-identity"
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
    PRINCIPAL_MARK_CHANGED = "principal-mark-changed"
    PRINCIPAL_NOT_REQUESTER = "principal-not-requester"
    LEASE_NOT_HOLDER = "lease-not-holder"
    LOOKUP_FAILED = "lookup-failed"

    @property
    def blocks(self) -> bool:
        """Whether this reason means the lock forbids the write."""
        return self in _BLOCKING


_BLOCKING = frozenset({Reason.NOT_IN_TRANSACTION, Reason.OTHER_TRANSACTION, Reason.CARRIED_OVER,
                       Reason.MARKER_MISSING, Reason.LEASE_NOT_HOLDER, Reason.NOT_A_MEMBER,
                       Reason.LEASE_NOT_MEMBER, Reason.MEMBERS_INVALID, Reason.MEMBERS_REQUIRED,
                       Reason.PRINCIPAL_MARK_CHANGED, Reason.PRINCIPAL_NOT_REQUESTER})


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
class HolderRef:
    """Where the record of a holding transaction lives (a profile's :class:`~lockcore.profiles.HolderRecord`)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class HolderIdentity:
    """The identity a holding transaction writes as, read from its record.

    ``username`` is empty when nothing was looked up, or the record is gone
    or names no identity: then no requester is the holder.
    """

    username: str = ""


NOT_LOOKED_UP = HolderIdentity()
HolderLookupResult = HolderIdentity | LookupFailed


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
