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

import json
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lockcore.naming import ResourceKey

LeaseOp = Literal["creating", "getting", "listing", "deleting", "renewing", "taking over", "changing members"]
FenceOp = Literal["stamping", "unstamping", "resolving", "reserving"]


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
        # What kubectl would print: the API server's own message (which webhook or
        # policy refused, and why), not only the status line.
        self.server_message = server_message(cause)
        said = f"{self.server_message} [{reason}]" if self.server_message else reason
        super().__init__(f"{op} lease {where}: {said}{code}")


def server_message(cause: BaseException) -> str:
    """The ``message`` of the Status object an API error carries, or ``""``.

    >>> class E(Exception): body = b'{"kind":"Status","message":"denied: locked"}'
    >>> server_message(E())
    'denied: locked'
    """
    body = getattr(cause, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.startswith("{"):
        return ""
    try:
        status = json.loads(body)
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return message if isinstance(message, str) else ""


class ClusterConfigError(LockError):
    """No usable way to reach a cluster: no kubeconfig, a missing file, an unknown context.

    ``kubeconfig`` is the path (or ``$KUBECONFIG`` list) that was tried, ``""``
    when none was; ``context`` the context asked for. A loader error is
    ``__cause__``.

    >>> str(ClusterConfigError('context "nope" does not exist', context="nope"))
    'context "nope" does not exist'
    """

    def __init__(self, detail: str, *, kubeconfig: str = "", context: str = "") -> None:
        self.detail = detail
        self.kubeconfig = kubeconfig
        self.context = context
        super().__init__(detail)


class ClusterUnreachableError(LockError):
    """The API server did not answer at all (refused, timed out, TLS or DNS failure).

    ``server`` is the URL tried; the transport error is ``__cause__`` (and ``cause``).

    >>> str(ClusterUnreachableError("https://127.0.0.1:1", ConnectionRefusedError()))
    'cannot reach the API server at https://127.0.0.1:1: connection refused'
    """

    def __init__(self, server: str, cause: BaseException) -> None:
        self.server = server
        self.cause = cause
        super().__init__(f"cannot reach the API server at {server}: {_transport_reason(cause)}")


class NamespaceNotFoundError(LockError):
    """A lock's Lease cannot be created because its namespace does not exist.

    >>> str(NamespaceNotFoundError("nope"))
    'namespace "nope" not found'
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(f'namespace "{namespace}" not found')


def _transport_reason(cause: BaseException) -> str:
    """A short reason for a transport failure, from the innermost error that says one."""
    text = f"{cause!r} {cause}".lower()
    for needle, reason in (("refused", "connection refused"), ("timed out", "timed out"),
                           ("timeout", "timed out"), ("certificate", "TLS certificate not trusted"),
                           ("name or service not known", "unknown host"),
                           ("nodename nor servname", "unknown host")):
        if needle in text:
            return reason
    return str(cause) or cause.__class__.__name__


class FenceError(LockError):
    """The locked object could not be stamped (or un-stamped).

    ``status`` is the API server's HTTP status when it answered (403: the
    caller may not patch the object); ``__cause__`` the underlying error.
    """

    def __init__(self, op: FenceOp, key: ResourceKey, detail: str, *, status: int | None = None) -> None:
        self.op = op
        self.key = key
        self.status = status
        self.detail = detail
        code = f" (HTTP {status})" if status else ""
        if op == "reserving":
            super().__init__(f"reserving the name of {key.describe()}: {detail}{code}")
        else:
            super().__init__(f"{op} {key.describe()} with label leasegate.io/locked: {detail}{code}")
