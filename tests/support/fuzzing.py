"""One admission request through the real Flask app, cross-checked against the pure functions.

The app is ``webhook.app.create_app`` exactly as gunicorn serves it; only the
Lease source is a fixed answer (the lookup result is an *input* of the
decision, chosen by the fuzzer). Each call checks the invariant of the
admission port: either a clear 4xx whose status is the parser's
:class:`ReviewError` status, or HTTP 200 with a well-formed AdmissionReview
whose verdict is what :func:`webhook.decision.decide` says. Never a 5xx,
never an exception.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask.testing import FlaskClient

from lockcore.lease import LeaseState
from lockcore.naming import LeaseRef
from tests.support.admission import assert_well_formed
from tests.support.clock import FakeClock
from webhook.app import create_app
from webhook.decision import decide, lease_for
from webhook.outcome import ABSENT, LeaseLookupResult, LookupFailed, enforce
from webhook.review import ReviewError, parse_review
from webhook.settings import ServingSettings, WebhookSettings

MAX_BODY = 64 * 1024
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SETTINGS = WebhookSettings(serving=ServingSettings(max_body_bytes=MAX_BODY))
LOOKUPS: dict[str, LeaseLookupResult] = {
    "absent": ABSENT,
    "failed": LookupFailed("connection refused"),
    "live-t1": LeaseState(holder="t1", renew_time=NOW - timedelta(seconds=5), duration_seconds=60,
                          principal="alice"),
    "live-t2": LeaseState(holder="t2", renew_time=NOW, duration_seconds=60),
    "expired": LeaseState(holder="t1", renew_time=NOW - timedelta(hours=1), duration_seconds=60),
}


@dataclass
class FixedLeases:
    """The lookup result the fuzzer picked (a decision input, not an API stand-in)."""

    found: LeaseLookupResult = ABSENT

    def lookup(self, ref: LeaseRef) -> LeaseLookupResult:
        return self.found

    lookup_fresh = lookup


class Harness:
    def __init__(self) -> None:
        self.leases = FixedLeases()
        app = create_app(SETTINGS, self.leases, clock=FakeClock(start=NOW))
        app.testing = False  # errors must surface as responses, as in production
        self.client: FlaskClient = app.test_client()
        self.outcomes: Counter[str] = Counter()

    def check(self, body: bytes, content_type: str | None = "application/json",
              lookup: str = "absent") -> None:
        self.leases.found = LOOKUPS[lookup]
        headers = {"Content-Type": content_type} if content_type is not None else {}
        resp = self.client.post("/validate", data=body, headers=headers)
        assert resp.status_code < 500, f"HTTP {resp.status_code} for {body[:200]!r}"
        try:
            expected = parse_review(body, content_type, max_body_bytes=MAX_BODY)
        except ReviewError as exc:
            assert resp.status_code == exc.status, (resp.status_code, exc, body[:200])
            error = json.loads(resp.data)
            assert error["status"] == exc.status and error["error"]
            self.outcomes[f"http-{exc.status}"] += 1
            return
        assert resp.status_code == 200, (resp.status_code, resp.data[:300])
        response = assert_well_formed(json.loads(resp.data), expected.uid)
        found = LOOKUPS[lookup] if lease_for(expected, SETTINGS.policy) is not None else ABSENT
        verdict = enforce(decide(expected, found, SETTINGS.policy, NOW), SETTINGS.enforcement)
        assert response["allowed"] is verdict.allowed
        self.outcomes["allowed" if verdict.allowed else "denied"] += 1


def to_body(doc: Any) -> bytes:
    return json.dumps(doc, default=str).encode()
