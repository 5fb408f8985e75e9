"""What the CLI prints for a failure, and the exit code it gives: one line, kubectl's form."""

from __future__ import annotations

import json
import subprocess

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from lockcore.cli import main
from lockcore.cli.failures import KubectlError, UsageError, exit_code, explain, message, needs_saying
from lockcore.connect import unreachable
from lockcore.errors import (
    AlreadyLockedError,
    ClusterConfigError,
    ClusterUnreachableError,
    LeaseOpError,
    LockExpiredError,
    NamespaceNotFoundError,
)
from lockcore.naming import InvalidKeyError
from lockcore.settings import SettingsError


@pytest.mark.parametrize(("exc", "code"), [
    (AlreadyLockedError("l", "t1"), 3),
    (LockExpiredError("l"), 4),
    (ClusterConfigError("x"), 5),
    (ClusterUnreachableError("https://h", ConnectionRefusedError()), 5),
    (InvalidKeyError("x"), 2),
    (SettingsError("x"), 2),
    (UsageError("x"), 2),
    (NamespaceNotFoundError("nope"), 1),
    (LeaseOpError("creating", "l", ApiException(status=403, reason="Forbidden")), 1),
    (ApiException(status=500, reason="Internal"), 1),
    (subprocess.CalledProcessError(1, ["kubectl"]), 1),
    (urllib3.exceptions.ProtocolError("x"), 1),
])
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert exit_code(exc) == code


def api_error(status: int, reason: str, body: str | None) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body
    return exc


@pytest.mark.parametrize(("exc", "line"), [
    (api_error(403, "Forbidden", json.dumps({"kind": "Status", "message": 'secrets "x" is forbidden'})),
     'secrets "x" is forbidden (Forbidden)'),
    (api_error(401, "Unauthorized", json.dumps({"message": "Unauthorized"})), "Unauthorized (HTTP 401)"),
    (api_error(502, "Bad Gateway", "<html>proxy</html>"), "Bad Gateway (HTTP 502)"),
    (api_error(500, "Internal", None), "Internal (HTTP 500)"),
    (api_error(500, "Internal", "[1, 2]"), "Internal (HTTP 500)"),
    (LockExpiredError("l", namespace="ns"), "lease ns/l has expired or no longer exists"),
])
def test_messages_are_one_line(exc: BaseException, line: str) -> None:
    assert message(exc) == line


def test_a_404_on_create_is_the_missing_namespace() -> None:
    cause = LeaseOpError("creating", "lg.configmap.x", ApiException(status=404, reason="Not Found"), namespace="nope")
    explained = explain(cause, "")
    assert isinstance(explained, NamespaceNotFoundError) and explained.namespace == "nope"
    assert explained.__cause__ is cause
    # Other operations' 404s are what they say.
    other = LeaseOpError("deleting", "l", ApiException(status=404, reason="Not Found"), namespace="nope")
    assert explain(other, "") is other


@pytest.mark.parametrize(("argv", "stderr"), [
    (["acquire", "cm/x", "--txn", "t"],
     "error: the following arguments are required: --ttl\nSee 'lockcore acquire --help' for usage.\n"),
    (["status"], "error: the following arguments are required: TYPE/NAME\nSee 'lockcore status --help' for usage.\n"),
    (["acquire", "cm/x", "--txn", "t", "--ttl", "soon"],
     "error: argument --ttl: invalid duration 'soon' (e.g. 30s, 10m, 1h30m)\n"
     "See 'lockcore acquire --help' for usage.\n"),
])
def test_usage_errors_are_two_lines(argv: list[str], stderr: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr() == ("", stderr)


def test_a_refused_connection_behind_a_lease_error_is_unreachable() -> None:
    refused = urllib3.exceptions.MaxRetryError(None, "/api", urllib3.exceptions.NewConnectionError(None, "refused"))
    wrapped = LeaseOpError("listing", "", refused, namespace="ns")
    wrapped.__cause__ = refused
    explained = unreachable(wrapped, "https://127.0.0.1:1")
    assert isinstance(explained, ClusterUnreachableError) and explained.__cause__ is refused
    assert str(explained) == "cannot reach the API server at https://127.0.0.1:1: connection refused"
    assert exit_code(explained) == 5
    assert unreachable(LeaseOpError("listing", "", ApiException(status=500)), "https://h") is None


def test_a_kubectl_failure_is_said_once() -> None:
    # kubectl printed its own error line: the CLI adds none; else it says which kubectl step failed.
    said = KubectlError(1, ["kubectl", "annotate", "--local"], reported=True)
    silent = KubectlError(1, ["kubectl", "apply", "-f", "-"], reported=False)
    assert (exit_code(said), needs_saying(said)) == (1, False)
    assert (exit_code(silent), needs_saying(silent), message(silent)) == (1, True, "kubectl apply failed (exit 1)")
    assert needs_saying(UsageError("x"))
