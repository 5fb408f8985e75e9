"""What a failure means for the user: the exit code and the one line ``error: ...`` says.

>>> exit_code(UsageError("bad")), message(UsageError("bad"))
(2, 'bad')
"""

from __future__ import annotations

import json
import subprocess

import urllib3
from kubernetes.client.exceptions import ApiException

from lockcore.cli.parser import EXIT_ERROR, EXIT_EXPIRED, EXIT_LOCKED, EXIT_NO_CLUSTER, EXIT_USAGE
from lockcore.connect import unreachable
from lockcore.errors import (
    AlreadyLockedError,
    ClusterConfigError,
    ClusterUnreachableError,
    LeaseOpError,
    LockError,
    LockExpiredError,
    NamespaceNotFoundError,
)
from lockcore.naming import InvalidKeyError
from lockcore.settings import SettingsError


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class KubectlError(subprocess.CalledProcessError):
    """The real kubectl failed; ``reported`` when it said why on stderr already (exit code 1).

    >>> str(KubectlError(1, ["kubectl", "apply", "-f", "-"], reported=False))
    'kubectl apply failed (exit 1)'
    """

    def __init__(self, returncode: int, cmd: list[str], *, reported: bool) -> None:
        super().__init__(returncode, cmd)
        self.reported = reported

    def __str__(self) -> str:
        return f"{' '.join(self.cmd[:2])} failed (exit {self.returncode})"


# First match wins: the specific lock errors before LockError, their base.
EXIT_CODES: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((AlreadyLockedError,), EXIT_LOCKED),
    ((LockExpiredError,), EXIT_EXPIRED),
    ((ClusterConfigError, ClusterUnreachableError), EXIT_NO_CLUSTER),
    ((InvalidKeyError, SettingsError, UsageError, ValueError), EXIT_USAGE),
    ((LockError, ApiException, OSError, subprocess.CalledProcessError, urllib3.exceptions.HTTPError),
     EXIT_ERROR),
)
HANDLED = tuple(kind for kinds, _code in EXIT_CODES for kind in kinds)


def exit_code(exc: BaseException) -> int:
    """The exit code for a handled error (see :data:`EXIT_CODES`)."""
    return next(code for kinds, code in EXIT_CODES if isinstance(exc, kinds))


def explain(exc: BaseException, server: str) -> BaseException:
    """The error the user should see: what a low-level failure means for them.

    ``server`` is the API server's URL once a client exists, "" before.
    """
    gone = unreachable(exc, server) if server else None
    if gone is not None:
        return gone
    if isinstance(exc, LeaseOpError) and isinstance(exc.cause, ApiException) and exc.status == 403 \
            and "message" in (exc.cause.body or ""):
        return exc.cause  # the webhook's (or RBAC's) own refusal says why and what to do
    if isinstance(exc, LeaseOpError) and exc.op == "creating" and exc.status == 404:
        # A Lease can be missing only as an object; a 404 on create means its namespace is.
        missing = NamespaceNotFoundError(exc.namespace)
        missing.__cause__ = exc
        return missing
    return exc


def needs_saying(exc: BaseException) -> bool:
    """False for a failure already reported in its own words (kubectl's ``error: ...`` line)."""
    return not (isinstance(exc, KubectlError) and exc.reported)


def message(exc: BaseException) -> str:
    """One line: an API error as the server's own message (kubectl's), not the raw HTTP dump."""
    if not isinstance(exc, ApiException):
        return str(exc)
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = {}
    text = status.get("message") if isinstance(status, dict) else None
    return f"{text} ({exc.reason})" if text and text != exc.reason else f"{exc.reason} (HTTP {exc.status})"
