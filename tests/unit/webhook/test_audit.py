"""webhook/audit.py: the log line and the auditAnnotations are views of one record; the Events' creation budget."""

from __future__ import annotations

import logging

import pytest

from lockcore.naming import LeaseRef
from tests.support.clock import FakeClock
from webhook.audit import CreationBudget, audit_annotations, blocked_write, log_decision
from webhook.outcome import Reason, Verdict
from webhook.review import AdmissionRequest
from webhook.settings import EnforcementMode

REQUEST = AdmissionRequest(uid="u1", operation="UPDATE", group="apps", version="v1", kind="Deployment",
                           resource="deployments", namespace="shop", name="web", username="bob",
                           groups=("developers",), sub_resource="scale")
DENIED = Verdict(allowed=False, reason=Reason.NOT_IN_TRANSACTION, mode=EnforcementMode.DENY, code=403,
                 lease=LeaseRef("shop", "lg.deployment.web.apps"), holder="t42", declared_txn="t9",
                 would_deny=True)


def test_the_log_line_is_the_record_and_the_request_extras(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="leasegate.audit"):
        log_decision(REQUEST, DENIED, 0.0012345)
    fields = caplog.records[-1].fields
    record = blocked_write(REQUEST, DENIED)
    assert {k: fields[k] for k in vars(record)} == vars(record)
    assert {k: v for k, v in fields.items() if k not in vars(record)} == {
        "uid": "u1", "groups": ["developers"], "subresource": "scale", "decision": "deny", "dry_run": False,
        "latency_ms": 1.234}
    assert caplog.records[-1].getMessage() == "write denied"


def test_audit_annotations_are_the_records_lock_fields() -> None:
    assert audit_annotations(REQUEST, DENIED) == {
        "decision": "deny", "reason": "not-in-transaction", "lease": "shop/lg.deployment.web.apps", "mode": "deny",
        "holder": "t42", "declared-txn": "t9"}


@pytest.mark.parametrize("verdict", [
    Verdict(allowed=True, reason=Reason.UNLOCKED, mode=EnforcementMode.DENY),
    Verdict(allowed=True, reason=Reason.EXPIRED, mode=EnforcementMode.DENY, lease=LeaseRef("shop", "lg.x")),
])
def test_no_audit_annotations_without_a_lock_in_play(verdict: Verdict) -> None:
    assert audit_annotations(REQUEST, verdict) == {}


def test_an_allowed_write_in_a_transaction_is_annotated_too() -> None:
    allowed = Verdict(allowed=True, reason=Reason.IN_TRANSACTION, mode=EnforcementMode.WARN,
                      lease=LeaseRef("shop", "lg.x"), holder="t42", declared_txn="t42")
    assert audit_annotations(REQUEST, allowed) == {"decision": "allow", "reason": "in-transaction",
                                                   "lease": "shop/lg.x", "mode": "warn", "holder": "t42",
                                                   "declared-txn": "t42"}


def test_a_namespace_is_recorded_as_cluster_scoped() -> None:
    # The API server fills request.namespace of a Namespace with its own name.
    own = AdmissionRequest(uid="u", operation="UPDATE", group="", version="v1", kind="Namespace",
                           resource="namespaces", namespace="team-a", name="team-a", username="admin")
    assert blocked_write(own, DENIED).namespace == ""
    assert blocked_write(REQUEST, DENIED).namespace == "shop"


@pytest.mark.parametrize("per_second, burst, steps, expected", [
    # (seconds advanced before a take) -> whether it got a token
    (2.0, 3, [0, 0, 0, 0], [True, True, True, False]),          # the burst, then nothing
    (2.0, 3, [0, 0, 0, 0.5, 0], [True, True, True, True, False]),  # 0.5 s buys one more
    (2.0, 2, [0, 0, 10, 0, 0], [True, True, True, True, False]),   # a long pause refills to the burst only
    (0.5, 1, [0, 1, 1, 0], [True, False, True, False]),          # one every 2 s
])
def test_the_creation_budget_allows_a_burst_then_a_rate(
        per_second: float, burst: int, steps: list[float], expected: list[bool]) -> None:
    clock = FakeClock()
    budget = CreationBudget(per_second=per_second, burst=burst, clock=clock)
    taken = []
    for seconds in steps:
        clock.advance(seconds)
        taken.append(budget.take())
    assert taken == expected


@pytest.mark.parametrize("per_second, burst", [(0, 1), (-1, 5), (1, 0)])
def test_a_budget_that_could_never_create_is_refused(per_second: float, burst: int) -> None:
    with pytest.raises(ValueError, match="per_second must be positive"):
        CreationBudget(per_second=per_second, burst=burst)
