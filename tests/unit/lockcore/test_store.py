"""The lease store's requests and how their failures map to lockcore's answers (lockcore.store).

The client here is the official ``ApiClient`` with no server behind it: each
request is recorded, then fails as the test says (an API status, or a
connection that never opens). What the API server does with the requests is
tested against the real one (tests/integration/lockcore/test_manager.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.errors import LeaseOpError
from lockcore.lease import LeaseState
from lockcore.members import Members
from lockcore.naming import LeaseRef
from lockcore.store import LeaseStore, Seen

REF = LeaseRef("shop", "lg.configmap.cfg")
LEASE_URL = "/apis/coordination.k8s.io/v1/namespaces/shop/leases"
SEEN = Seen.from_json({"metadata": {"resourceVersion": "41", "uid": "u-1"},
                       "spec": {"holderIdentity": "t1", "renewTime": "2026-01-01T00:00:00.000000Z",
                                "leaseDurationSeconds": 30}})
NOW = datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc)


class Failing(client.ApiClient):  # type: ignore[misc]
    """Records each request, then fails it with ``error``: nothing reaches a server."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(client.Configuration(host="https://127.0.0.1:1"))
        self.error = error
        self.requests: list[tuple[str, str, Any, Any]] = []

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None, post_params: Any = None,
                 _request_timeout: Any = None) -> Any:
        self.requests.append((method, url.removeprefix("https://127.0.0.1:1"), body, _request_timeout))
        raise self.error


def store(error: BaseException) -> tuple[LeaseStore, Failing]:
    api = Failing(error)
    return LeaseStore(api, request_timeout=7.0), api


def status(code: int) -> ApiException:
    return ApiException(status=code, reason="refused")


def test_seen_keeps_what_the_next_conditional_write_needs() -> None:
    assert (SEEN.renew_time_raw, SEEN.uid, SEEN.state.resource_version) == ("2026-01-01T00:00:00.000000Z", "u-1", "41")
    assert SEEN.state == LeaseState.from_json({"metadata": {"resourceVersion": "41", "uid": "u-1"},
                                               "spec": {"holderIdentity": "t1",
                                                        "renewTime": "2026-01-01T00:00:00.000000Z",
                                                        "leaseDurationSeconds": 30}})


@pytest.mark.parametrize(("code", "write", "answer"), [
    (404, lambda s: s.get(REF), None),
    (409, lambda s: s.create(REF, {"metadata": {"name": REF.name}}), False),
    (404, lambda s: s.replace(REF, {"metadata": {"name": REF.name}}, "taking over"), False),
    (409, lambda s: s.replace(REF, {"metadata": {"name": REF.name}}, "renewing"), False),
    (422, lambda s: s.patch_renew(REF, "t1", SEEN, NOW, 30), False),
    (409, lambda s: s.patch_members(REF, "t1", SEEN.state, Members.of(["user:bob"])), False),
    (409, lambda s: s.delete_if_unchanged(REF, SEEN), False),
    (404, lambda s: s.delete_if_unchanged(REF, SEEN), True),  # gone already: as good as deleted
    (404, lambda s: s.delete(REF), False),
])
def test_a_refused_precondition_is_an_answer_not_an_error(code: int, write: Any, answer: object) -> None:
    lease_store, _ = store(status(code))
    assert write(lease_store) is answer
    assert lease_store.cached(REF) is None


@pytest.mark.parametrize(("error", "write", "op"), [
    (status(403), lambda s: s.get(REF, "renewing"), "renewing"),
    (status(404), lambda s: s.create(REF, {"metadata": {"name": REF.name}}), "creating"),
    (status(500), lambda s: s.patch_renew(REF, "t1", SEEN, NOW, 30), "renewing"),
    (status(403), lambda s: s.list_leases("leasegate.io/txn"), "listing"),
    (ConnectionRefusedError(), lambda s: s.delete(REF), "deleting"),
])
def test_other_failures_are_lease_op_errors_chaining_the_cause(error: BaseException, write: Any, op: str) -> None:
    lease_store, _ = store(error)
    with pytest.raises(LeaseOpError) as failed:
        write(lease_store)
    assert failed.value.op == op and failed.value.__cause__ is error
    assert failed.value.status == getattr(error, "status", None)


def test_renew_is_a_json_patch_testing_holder_and_the_renew_time_seen() -> None:
    lease_store, api = store(status(422))
    lease_store.patch_renew(REF, "t1", SEEN, NOW, 45)
    [(method, url, ops, timeout)] = api.requests
    assert (method, url, timeout) == ("PATCH", f"{LEASE_URL}/{REF.name}", 7.0)
    assert ops == [
        {"op": "test", "path": "/spec/holderIdentity", "value": "t1"},
        {"op": "test", "path": "/spec/renewTime", "value": "2026-01-01T00:00:00.000000Z"},
        {"op": "replace", "path": "/spec/renewTime", "value": "2026-01-01T00:00:10.000000Z"},
        {"op": "replace", "path": "/spec/leaseDurationSeconds", "value": 45},
    ]


def test_members_are_changed_only_on_the_version_read() -> None:
    lease_store, api = store(status(409))
    lease_store.patch_members(REF, "t1", SEEN.state, Members.of(["user:bob"]))
    ops = api.requests[0][2]
    assert ops[:2] == [{"op": "test", "path": "/spec/holderIdentity", "value": "t1"},
                       {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}]
    assert ops[2]["path"] == "/metadata/annotations/leasegate.io~1members"


def test_release_deletes_only_the_version_and_object_seen() -> None:
    lease_store, api = store(status(409))
    lease_store.delete_if_unchanged(REF, SEEN)
    [(method, url, options, _)] = api.requests
    assert (method, url) == ("DELETE", f"{LEASE_URL}/{REF.name}")
    assert options["preconditions"] == {"resourceVersion": "41", "uid": "u-1"}
