"""webhook/ledger.py without a cluster: what is recorded and how it aggregates (its settings: test_settings.py).

Writing the reports is proved against the real API server (tests/integration/webhook/test_ledger.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from lockcore.naming import LeaseRef
from tests.support.clock import FakeClock
from webhook.apiserver import ApiServer
from webhook.ledger import Ledger
from webhook.outcome import Reason, Verdict
from webhook.review import AdmissionRequest
from webhook.settings import EnforcementMode, LedgerSettings

REQUEST = AdmissionRequest(uid="u", operation="UPDATE", group="", version="v1", kind="ConfigMap",
                           resource="configmaps", namespace="shop", name="cfg", username="bob")
DENIED = Verdict(allowed=False, reason=Reason.NOT_IN_TRANSACTION, mode=EnforcementMode.DENY, code=403,
                 lease=LeaseRef("shop", "lg.configmap.cfg"), holder="t1", would_deny=True)
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def no_api() -> ApiServer:
    raise AssertionError("recording must not call the API server")


def ledger(**kwargs: object) -> tuple[Ledger, list[tuple[str, int]]]:
    outcomes: list[tuple[str, int]] = []
    made = Ledger(no_api, LedgerSettings(flush_seconds=3600), clock=FakeClock(start=T0),
                  on_outcome=lambda outcome, n: outcomes.append((outcome, n)), **kwargs)  # type: ignore[arg-type]
    return made, outcomes


def test_refusals_of_one_record_are_one_tally() -> None:
    made, _ = ledger()
    for _ in range(3):
        made.record(REQUEST, DENIED)
    made.record(replace(REQUEST, username="carol"), DENIED)
    assert made.pending() == 4


@pytest.mark.parametrize(("request_", "verdict"), [
    (replace(REQUEST, dry_run=True), DENIED),  # nothing was written
    (REQUEST, replace(DENIED, allowed=True, would_deny=False)),  # nobody refused it
    (replace(REQUEST, name=""), DENIED),  # no object to name
])
def test_not_recorded(request_: AdmissionRequest, verdict: Verdict) -> None:
    made, _ = ledger()
    made.record(request_, verdict)
    assert made.pending() == 0


def test_warn_and_dryrun_modes_are_recorded() -> None:
    made, _ = ledger()
    for mode in (EnforcementMode.WARN, EnforcementMode.DRYRUN):
        made.record(REQUEST, replace(DENIED, allowed=True, mode=mode))
    assert made.pending() == 2


def test_beyond_max_pending_records_a_new_record_is_dropped_and_counted() -> None:
    made, outcomes = ledger(max_pending=2)
    for user in ("a", "b", "c", "a"):
        made.record(replace(REQUEST, username=user), DENIED)
    assert made.pending() == 3 and outcomes == [("dropped", 1)]
