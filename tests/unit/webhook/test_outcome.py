"""webhook.outcome: what an outcome means under an enforcement (codes, reasons, modes, failed lookups)."""

from __future__ import annotations

import pytest

from tests.support.decisions import HELD, POLICY, judge, req
from webhook.outcome import LookupFailed, Outcome, Reason, Verdict, enforce
from webhook.settings import Enforcement, EnforcementMode, FailurePolicy


@pytest.mark.parametrize(("mode", "warned"), [(EnforcementMode.WARN, True), (EnforcementMode.DRYRUN, False)])
def test_warn_and_dryrun_allow_but_record(mode: EnforcementMode, warned: bool) -> None:
    verdict = judge(req(), HELD, POLICY, Enforcement(mode=mode))
    assert verdict.allowed and verdict.would_deny and verdict.decision == mode.value
    assert bool(verdict.warnings) is warned
    if warned:
        assert "t1" in verdict.warnings[0]


def test_enforce_owns_codes_and_reasons() -> None:
    blocked = Outcome(Reason.OTHER_TRANSACTION, "locked")
    failed = Outcome(Reason.LOOKUP_FAILED, "could not read")
    deny, allow_on_failure = Enforcement(), Enforcement(lookup_failure_policy=FailurePolicy.ALLOW)
    assert (enforce(blocked, deny).code, enforce(blocked, deny).status_reason) == (403, "Forbidden")
    assert (enforce(failed, deny).code, enforce(failed, deny).status_reason) == (503, "ServiceUnavailable")
    assert enforce(failed, allow_on_failure).allowed
    assert enforce(Outcome(Reason.UNLOCKED), deny) == Verdict(allowed=True, reason=Reason.UNLOCKED,
                                                              mode=EnforcementMode.DENY)


def test_lookup_failure_says_so() -> None:
    denied = judge(req(), LookupFailed("connection refused"))
    assert denied.code == 503 and "connection refused" in denied.message
    assert "lookup_failure_policy=deny" in denied.message
    allowed = judge(req(), LookupFailed("timeout"), POLICY, Enforcement(lookup_failure_policy=FailurePolicy.ALLOW))
    assert allowed.warnings and "lookup_failure_policy=allow" in allowed.warnings[0]
    assert not allowed.would_deny
