"""What lockcore's errors say and carry (lockcore.errors)."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from lockcore.errors import (
    AlreadyLockedError,
    ClusterUnreachableError,
    LeaseOpError,
    LockExpiredError,
    server_message,
)


def test_already_locked_names_the_holder_and_when_it_expires() -> None:
    exc = AlreadyLockedError("lg.configmap.web", "t41", namespace="shop", expires_in_seconds=12.4)
    assert (exc.holder, exc.namespace, exc.expires_in_seconds) == ("t41", "shop", 12.4)
    assert str(exc) == "lease shop/lg.configmap.web is held by transaction 't41' (expires in 12s)"
    assert str(LockExpiredError("l")) == "lease l has expired or no longer exists"


def test_a_lease_op_error_says_what_the_api_server_said() -> None:
    cause = ApiException(status=403, reason="Forbidden")
    cause.body = b'{"kind":"Status","message":"leases is forbidden: User \\"bob\\" cannot create"}'
    exc = LeaseOpError("creating", "lg.x", cause, namespace="shop")
    assert exc.status == 403 and exc.cause is cause
    assert str(exc) == 'creating lease shop/lg.x: leases is forbidden: User "bob" cannot create [Forbidden] (HTTP 403)'


def test_a_lease_op_error_without_an_answer_names_the_failure() -> None:
    exc = LeaseOpError("renewing", "lg.x", ConnectionRefusedError())
    assert exc.status is None and str(exc) == "renewing lease lg.x: ConnectionRefusedError"


@pytest.mark.parametrize("body", [None, b"", b"not json", b'["a list"]', b'{"message": 7}', "{broken"])
def test_server_message_is_empty_unless_a_status_says_one(body: object) -> None:
    cause = ApiException(status=500)
    cause.body = body
    assert server_message(cause) == ""


@pytest.mark.parametrize(("cause", "reason"), [
    (ConnectionRefusedError("[Errno 111] Connection refused"), "connection refused"),
    (TimeoutError("timed out"), "timed out"),
    (OSError("certificate verify failed"), "TLS certificate not trusted"),
    (OSError("Name or service not known"), "unknown host"),
    (OSError("something else"), "something else"),
])
def test_unreachable_says_why_in_a_few_words(cause: BaseException, reason: str) -> None:
    assert str(ClusterUnreachableError("https://h:6443", cause)) == f"cannot reach the API server at https://h:6443: {reason}"
