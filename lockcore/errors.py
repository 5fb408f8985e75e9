"""The errors lockcore raises, each carrying what a caller needs to act on it.

They mirror the reference Go package (``ErrAlreadyLocked``, ``ErrLockExpired``,
``LeaseOpError``) as Python exceptions. API failures are always chained
(``raise LeaseOpError(...) from api_exception``) so the Kubernetes status stays
available as ``__cause__``.

Example::

    >>> try:
    ...     raise AlreadyLockedError("lg.configmap.web", "t41", namespace="shop")
    ... except LockError as exc:
    ...     print(exc.holder)
    t41
"""

from __future__ import annotations

from typing import Literal

LeaseOp = Literal["creating", "getting", "listing", "deleting", "renewing", "taking over"]


class LockError(Exception):
    """Base of every lock failure lockcore raises."""


class AlreadyLockedError(LockError):
    """The resource is locked by a different, unexpired transaction."""

    def __init__(
        self,
        lease_name: str,
        holder: str,
        *,
        namespace: str = "",
        expires_in_seconds: float | None = None,
    ) -> None:
        self.lease_name = lease_name
        self.holder = holder
        self.namespace = namespace
        self.expires_in_seconds = expires_in_seconds
        where = f"{namespace}/{lease_name}" if namespace else lease_name
        left = (
            f" (expires in {expires_in_seconds:.0f}s)" if expires_in_seconds is not None else ""
        )
        super().__init__(f"lease {where} is held by transaction {holder!r}{left}")


class LockExpiredError(LockError):
    """The lock is gone: the Lease does not exist any more or has expired."""

    def __init__(self, lease_name: str, *, namespace: str = "") -> None:
        self.lease_name = lease_name
        self.namespace = namespace
        where = f"{namespace}/{lease_name}" if namespace else lease_name
        super().__init__(f"lease {where} has expired or no longer exists")


class LeaseOpError(LockError):
    """A Kubernetes API call on a lock Lease failed for a reason other than the lock.

    ``op`` says what lockcore was doing; the API error is ``__cause__``
    (and ``cause``), with its HTTP ``status`` when the server answered.
    """

    def __init__(self, op: LeaseOp, lease_name: str, cause: BaseException, *, namespace: str = "") -> None:
        self.op = op
        self.lease_name = lease_name
        self.namespace = namespace
        self.cause = cause
        self.status: int | None = getattr(cause, "status", None)
        where = f"{namespace}/{lease_name}" if namespace else lease_name
        reason = getattr(cause, "reason", None) or cause.__class__.__name__
        code = f" (HTTP {self.status})" if self.status else ""
        super().__init__(f"{op} lease {where}: {reason}{code}")
