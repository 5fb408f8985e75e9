"""The admission Flask app: ``POST /validate``.

Two error channels, kept apart:

* a request that is not a valid AdmissionReview gets an HTTP 4xx with a JSON
  ``{"error": ...}`` body (the API server then applies the webhook's
  failurePolicy);
* a write the lock forbids gets HTTP 200 with a well-formed AdmissionReview
  whose ``response.allowed`` is false and ``response.status`` says why.

An unexpected exception while judging is answered like a failed Lease lookup
(``lookup_failure_policy``), with a well-formed review, and logged: a worker
never dies on a request and the API server always gets an answer it can use.
The app receives the decision (:class:`Judge`: lookups, then the pure
``decide`` and ``enforce``); HTTP and metrics wrap around it.

Example::

    app = create_app(settings, ConsistentLeaseSource(api, settings.lookups, settings.lock.lock_profile))
    app.test_client().post("/validate", data=review_bytes, content_type="application/json")
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from datetime import datetime

from flask import Flask, Response, request

from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.naming import LeaseRef
from webhook import metrics
from webhook.apiserver import ApiServer
from webhook.audit import EventRecorder, audit_annotations, log_decision
from webhook.decision import decide, holder_for, lease_for, lease_target, strictest, trusts_cache
from webhook.leases import LeaseSource, make_lease_source
from webhook.ledger import Ledger
from webhook.namespaces import NamespaceModes
from webhook.outcome import (
    ABSENT,
    NOT_LOOKED_UP,
    HolderLookupResult,
    LeaseLookupResult,
    LookupFailed,
    Outcome,
    Reason,
    Verdict,
    enforce,
)
from webhook.review import AdmissionRequest, ReviewError, build_response, parse_review
from webhook.settings import DecisionPolicy, Enforcement, EnforcementMode, WebhookSettings
from webhook.transactions import HolderSource, make_holder_source

log = logging.getLogger("leasegate.webhook")
_JSON = "application/json"
_DRAIN_FACTOR = 4


class Judge:
    """Looks up what a request needs, then :func:`decide` and :func:`enforce` (the app's core, I/O included)."""

    def __init__(self, policy: DecisionPolicy, enforcement: Enforcement, leases: LeaseSource, *,
                 namespace_modes: NamespaceModes | None = None, holders: HolderSource | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.policy = policy
        self.enforcement = enforcement
        self.leases = leases
        self.namespace_modes = namespace_modes
        self.holders = holders
        self.clock = clock

    def __call__(self, req: AdmissionRequest) -> Verdict:
        ref = lease_for(req, self.policy)
        found = [ABSENT] if ref is None else self._lookups(req, ref)
        now = self.clock.now()
        outcome = strictest([decide(req, lease, self.policy, now, self._holder(req, lease, now)) for lease in found])
        return enforce(outcome, self.enforcement_for(req, outcome))

    def _lookups(self, req: AdmissionRequest, ref: LeaseRef) -> list[LeaseLookupResult]:
        """The Lease at ``ref``, or every Lease of a cluster-scoped object the profile keeps anywhere."""
        target = lease_target(req, self.policy)
        if target is None:
            return [self._lookup(req, ref)]
        found = self.leases.lookup_target(target)
        if isinstance(found, LookupFailed):
            metrics.LOOKUP_ERRORS.inc()
            log.warning("lease lookup failed for %s: %s", target, found.error)
            return [found]
        return list(found) or [ABSENT]

    def _holder(self, req: AdmissionRequest, lease: LeaseLookupResult, now: datetime) -> HolderLookupResult:
        ref = holder_for(req, lease, self.policy, now) if self.holders is not None else None
        if ref is None or self.holders is None:
            return NOT_LOOKED_UP
        found = self.holders.lookup(ref)
        if isinstance(found, LookupFailed):
            metrics.LOOKUP_ERRORS.inc()
            log.warning("holder record lookup failed for %s: %s", ref, found.error)
        return found

    def _lookup(self, req: AdmissionRequest, ref: LeaseRef) -> LeaseLookupResult:
        found = self.leases.lookup(ref)
        if not isinstance(found, LookupFailed) and not trusts_cache(req, found, self.policy, self.clock.now()):
            found = self.leases.lookup_fresh(ref)
        if isinstance(found, LookupFailed):
            metrics.LOOKUP_ERRORS.inc()
            log.warning("lease lookup failed for %s: %s", ref, found.error)
        return found

    def enforcement_for(self, req: AdmissionRequest, outcome: Outcome) -> Enforcement:
        """The namespace label may make enforcement stricter, never weaker.

        Whoever may label a namespace must not be able to switch a lock off
        in it; weakening comes only from the configured mode (the chart's
        values). The label is read only when it can matter: a refused write
        under a mode weaker than deny.
        """
        mode = self.enforcement.mode
        if not outcome.refuses or mode is EnforcementMode.DENY or not req.namespace or self.namespace_modes is None:
            return self.enforcement
        stricter = mode.stricter(self.namespace_modes.get(req.namespace))
        return self.enforcement if stricter is mode else replace(self.enforcement, mode=stricter)


def create_app(settings: WebhookSettings, leases: LeaseSource, *, events: EventRecorder | None = None,
               ledger: Ledger | None = None, namespace_modes: NamespaceModes | None = None,
               holders: HolderSource | None = None,
               clock: Clock = SYSTEM_CLOCK) -> Flask:
    """The WSGI app answering AdmissionReviews on ``POST /validate``.

    It reads the policy and enforcement sections (the :class:`Judge`'s) and serving's ``max_body_bytes``.
    """
    app = Flask("leasegate-webhook")
    judge = Judge(settings.policy, settings.enforcement, leases, namespace_modes=namespace_modes, holders=holders,
                  clock=clock)
    app.extensions["leasegate.judge"] = judge
    app.extensions["leasegate.ledger"] = ledger
    max_body = settings.serving.max_body_bytes

    @app.post("/validate")
    def validate() -> Response:
        started = time.perf_counter()
        try:
            req = parse_review(_read_body(max_body), request.content_type, max_body_bytes=max_body)
        except ReviewError as exc:
            return _bad(exc)
        verdict = _judge_safely(judge, req)
        if verdict.would_deny:
            _audit(req, verdict, time.perf_counter() - started, events, ledger)
        review = build_response(
            req.uid, allowed=verdict.allowed, code=verdict.code, message=verdict.message,
            reason=verdict.status_reason, warnings=verdict.warnings, audit_annotations=audit_annotations(req, verdict),
        )
        metrics.DECISIONS.labels(verdict.decision, verdict.reason.value, verdict.mode.value).inc()
        metrics.DURATION.observe(time.perf_counter() - started)
        return app.response_class(json.dumps(review), 200, mimetype=_JSON)

    @app.errorhandler(405)
    @app.errorhandler(404)
    def not_found(exc: Exception) -> Response:
        code = getattr(exc, "code", 404) or 404
        return app.response_class(json.dumps({"error": str(exc)}), code, mimetype=_JSON)

    return app


def _audit(req: AdmissionRequest, verdict: Verdict, latency: float, events: EventRecorder | None,
           ledger: Ledger | None) -> None:
    """The traces of a (would-be) refusal: the log line, the Event, the ledger's result."""
    log_decision(req, verdict, latency)
    if events is not None:
        events.record(req, verdict)
    if ledger is not None:
        ledger.record(req, verdict)


def _read_body(max_body: int) -> bytes:
    """The request body, or ReviewError(413) without keeping a body over ``max_body``."""
    length = request.content_length
    if length is not None and length > max_body:
        # A moderately oversized body is read and discarded so the client gets
        # the 413 instead of a reset connection; beyond the drain cap the
        # connection is just closed.
        if length <= _DRAIN_FACTOR * max_body:
            while request.stream.read(1 << 16):
                pass
        raise ReviewError(413, f"request body of {length} bytes exceeds the limit of {max_body}")
    body: bytes = request.stream.read(max_body + 1)
    metrics.REQUEST_BYTES.observe(len(body))
    return body


def _bad(exc: ReviewError) -> Response:
    metrics.BAD_REQUESTS.labels(str(exc.status)).inc()
    log.warning("rejected malformed admission request (HTTP %d): %s", exc.status, exc.message,
                extra={"fields": {"uid": exc.uid, "status": exc.status}})
    return Response(json.dumps({"error": exc.message, "status": exc.status}), exc.status, mimetype=_JSON)


def _judge_safely(judge: Judge, req: AdmissionRequest) -> Verdict:
    try:
        return judge(req)
    except Exception as exc:  # noqa: BLE001 - answer per policy, never crash the worker
        log.exception("internal error judging request %s", req.uid)
        failed = Outcome(Reason.LOOKUP_FAILED, message=f"leasegate internal error ({exc.__class__.__name__})")
        try:  # the namespace's stricter mode holds here too; reading it may itself fail
            enforcement = judge.enforcement_for(req, failed)
        except Exception:  # noqa: BLE001 - fall back to the cluster mode, never crash the worker
            log.exception("reading the namespace mode for %s failed", req.uid)
            enforcement = judge.enforcement
        return enforce(failed, enforcement)


def create_app_from_settings(settings: WebhookSettings) -> Flask:
    """Wire the real lease source, Event recorder, ledger and namespace modes (what gunicorn loads).

    Each collaborator gets its own section and an API client built from ``settings.kubeconfig``.
    """
    def connect() -> ApiServer:
        return ApiServer.connect(settings.kubeconfig)

    api, profile, lookups = connect(), settings.lock.lock_profile, settings.lookups
    leases = make_lease_source(lookups, profile, api, on_staleness=metrics.CACHE_STALENESS.set,
                               on_fallback=metrics.CACHE_FALLBACKS.inc)
    events = EventRecorder(connect, settings.events, on_outcome=lambda outcome: metrics.EVENTS.labels(outcome).inc()) \
        if settings.events.enabled else None
    ledger = Ledger(connect, settings.ledger, on_outcome=lambda outcome, n: metrics.LEDGER.labels(outcome).inc(n)) \
        if settings.ledger.enabled else None
    label = settings.enforcement.namespace_mode_label
    modes = NamespaceModes(api, label, timeout=lookups.lookup_timeout_seconds) if label else None
    return create_app(settings, leases, events=events, ledger=ledger, namespace_modes=modes,
                      holders=make_holder_source(lookups, profile, api))
