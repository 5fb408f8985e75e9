"""The audit trail of writes a lock refused, or would have refused.

For each such decision the webhook leaves four traces, none of which ever
contains an object body, each a view of one record
(:class:`lockcore.audit.BlockedWrite`, built by :func:`blocked_write`):

* a structured JSON log line on logger ``leasegate.audit`` (:func:`log_decision`);
* ``auditAnnotations`` on the AdmissionResponse (:func:`audit_annotations`),
  which the API server writes into its own audit log as
  ``<webhook name>/<key>``;
* a ``WriteBlocked`` Event on the object (:class:`EventRecorder`): its body,
  name and aggregation key are :mod:`lockcore.audit`'s (``lockcore audit``
  parses it with the same module); this module only queues it and writes it
  from a background thread, aggregated per object + user + holder within
  the events section's window (:class:`~webhook.settings.EventSettings`)
  across workers and replicas, and never for dryRun requests;
* a result in the OpenReports ledger (:class:`webhook.ledger.Ledger`), which
  outlives Events.

Example::

    recorder = EventRecorder(lambda: ApiServer.connect(settings.kubeconfig), settings.events)
    recorder.record(request, verdict)      # returns at once; the Event is written later
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lockcore.audit import BlockedWrite, event_body, event_key, event_name, event_namespace, event_time
from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.kube import events_path
from webhook.apiserver import ApiServer, ApiServerError
from webhook.outcome import Verdict
from webhook.review import AdmissionRequest
from webhook.settings import EventSettings

audit_log = logging.getLogger("leasegate.audit")
log = logging.getLogger("leasegate.events")


def blocked_write(request: AdmissionRequest, verdict: Verdict) -> BlockedWrite:
    """The lockcore record of a (would-be) denied write (a Namespace's own namespace is "": cluster-scoped)."""
    return BlockedWrite(
        user=request.username, operation=request.operation, group=request.group, kind=request.kind,
        namespace=request.object_namespace, name=request.name,
        lease=str(verdict.lease) if verdict.lease else "", holder=verdict.holder,
        declared_txn=verdict.declared_txn, mode=verdict.mode.value, reason=verdict.reason.value,
    )


def audit_annotations(request: AdmissionRequest, verdict: Verdict) -> dict[str, str]:
    """Response auditAnnotations for a decision that involved a lock (empty otherwise).

    A view of the record (:meth:`BlockedWrite.audit_annotations`): the lock's
    fields; the API server's audit log has the user and the object already.
    """
    if verdict.lease is None or not (verdict.holder or verdict.would_deny):
        return {}
    return blocked_write(request, verdict).audit_annotations(verdict.decision)


def log_decision(request: AdmissionRequest, verdict: Verdict, latency_seconds: float) -> None:
    """One JSON line (via the JSON formatter) for a denied or would-be-denied write: the record's fields,
    then what only the request knows."""
    audit_log.warning(
        "write %s", "denied" if not verdict.allowed else f"would be denied ({verdict.mode.value})",
        extra={"fields": blocked_write(request, verdict).log_fields(
            uid=request.uid, groups=list(request.groups), subresource=request.sub_resource,
            decision=verdict.decision, dry_run=request.dry_run, latency_ms=round(latency_seconds * 1000, 3),
        )},
    )


@dataclass(frozen=True)
class _Blocked:
    record: BlockedWrite
    api_version: str
    object_uid: str
    at: datetime


@dataclass
class _Aggregate:
    namespace: str
    event_name: str
    bucket: int
    pending: int  # occurrences seen here and not yet added to the Event's count
    last_at: datetime


class EventRecorder:
    """Writes WriteBlocked Events from a background thread, aggregated per window.

    :meth:`record` never blocks and never raises: it drops the Event (and
    counts it) if the queue is full. One Event exists per object + user +
    holder + mode per window of ``settings.window_seconds`` of wall-clock time, across
    every worker and replica: its name is derived from those fields and the
    window, so whoever writes first creates it (409 for the others), and every
    writer adds its further occurrences to ``count`` with a read and a write
    conditional on the read's resourceVersion (no increment is lost), at most
    every ``flush_seconds``.

    Why 10 s, not faster: each count update is two API calls per Event per
    worker, and a refusal storm over many objects made that traffic (not the
    decision) the webhook's tail: with a 2 s flush, 20 refused objects cost the
    API server 40 calls/s and moved the cached p99 at 500 reviews/s from 30 to
    140 ms (bench/RESULTS.md). The first occurrence is still written at once;
    only the count trails by up to ``flush_seconds``. The exact, durable
    count is the ledger's.

    A storm over many objects is bounded too, as client-go's event spam
    filter bounds a controller's: new Events are created from a budget
    (:class:`CreationBudget`: ``burst`` at once, then ``per_second``), and one
    flush updates at most ``max_updates`` counts (the rest wait for the next).
    What the budget skips is counted as ``ratelimited`` and is in the ledger.
    """

    def __init__(
        self,
        connect: Callable[[], ApiServer],
        settings: EventSettings,
        *,
        flush_seconds: float = 10.0,
        max_queue: int = 1000,
        max_updates: int = 20,
        budget: CreationBudget | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._connect = connect
        self._window = settings.window_seconds
        self._flush = flush_seconds
        self._queue: queue.Queue[_Blocked] = queue.Queue(maxsize=max_queue)
        self._aggregates: dict[tuple[str | int, ...], _Aggregate] = {}
        self._max_updates = max_updates
        self._clock = clock
        self._budget = budget if budget is not None else CreationBudget(clock=clock)
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._thread: threading.Thread | None = None
        self._api: ApiServer | None = None
        self._lock = threading.Lock()

    def record(self, request: AdmissionRequest, verdict: Verdict) -> None:
        """Queue an Event for a (would-be) blocked write; no-op for dryRun requests."""
        if request.dry_run or not verdict.would_deny or not request.name:
            return
        self._ensure_started()
        item = _Blocked(blocked_write(request, verdict), request.api_version, request.object_uid,
                        self._clock.now())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._on_outcome("dropped")

    def _ensure_started(self) -> None:
        # Started lazily so that a gunicorn worker, not the pre-fork master, owns it.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
                self._thread.start()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued items are written (tests, shutdown)."""
        deadline = self._clock.monotonic() + timeout
        while self._queue.unfinished_tasks and self._clock.monotonic() < deadline:
            self._clock.sleep(0.02)
        self._flush_pending()

    def _run(self) -> None:
        api = self._connect()
        self._api = api
        last_flush = self._clock.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self._flush)
            except queue.Empty:
                item = None
            if item is not None:
                try:
                    self._handle(api, item)
                except Exception as exc:  # noqa: BLE001 - an Event must never take the worker down
                    self._on_outcome("failed")
                    log.warning("could not write WriteBlocked event: %s", exc)
                finally:
                    self._queue.task_done()
            if self._clock.monotonic() - last_flush >= self._flush:
                self._flush_pending()
                last_flush = self._clock.monotonic()

    def _handle(self, api: ApiServer, item: _Blocked) -> None:
        rec = item.record
        bucket = int(item.at.timestamp() // self._window)
        key = event_key(rec, bucket)
        with self._lock:
            agg = self._aggregates.get(key)
            if agg is not None:
                agg.pending += 1
                agg.last_at = item.at
                self._on_outcome("aggregated")
                return
            # Forget windows that have closed so the table stays small.
            for stale in [k for k, a in self._aggregates.items() if a.bucket < bucket and not a.pending]:
                del self._aggregates[stale]
        if not self._budget.take():
            self._on_outcome("ratelimited")  # a later occurrence opens it once the budget allows
            return
        namespace, name = event_namespace(rec), event_name(rec, bucket)
        status, body = api.request_json("POST", events_path(namespace), timeout=10,
                                         body=event_body(rec, name=name, namespace=namespace, at=item.at,
                                                         api_version=item.api_version,
                                                         object_uid=item.object_uid))
        if status == 201:
            pending, outcome = 0, "created"
        elif status == 409:
            # Another worker or replica opened this window's Event: add ours to it.
            pending, outcome = 1, "aggregated"
        else:
            raise ApiServerError(events_path(namespace), status, str(body)[:300])
        with self._lock:
            self._aggregates[key] = _Aggregate(namespace, name, bucket, pending, item.at)
        self._on_outcome(outcome)

    def _flush_pending(self) -> None:
        if self._api is None:
            return
        with self._lock:
            waiting = sorted((a for a in self._aggregates.values() if a.pending), key=lambda a: a.last_at)
            due = [(a, a.pending, a.last_at) for a in waiting[:self._max_updates]]
            for agg, *_ in due:
                agg.pending = 0
        for agg, pending, last_at in due:
            try:
                self._add_to_count(self._api, agg.namespace, agg.event_name, pending, last_at)
            except Exception as exc:  # noqa: BLE001 - best effort, counted
                self._on_outcome("failed")
                log.warning("could not update event %s/%s: %s", agg.namespace, agg.event_name, exc)

    @staticmethod
    def _add_to_count(api: ApiServer, namespace: str, name: str, pending: int, last_at: datetime) -> None:
        """count += pending, conditional on the resourceVersion read (several writers share the Event)."""
        path = events_path(namespace, name)
        for _ in range(5):
            status, event = api.request_json("GET", path, timeout=10)
            if status != 200 or not isinstance(event, dict):
                raise ApiServerError(path, status, str(event)[:300])
            patch = {
                "metadata": {"resourceVersion": (event.get("metadata") or {}).get("resourceVersion")},
                "count": int(event.get("count") or 1) + pending,
                "lastTimestamp": event_time(last_at),
            }
            status, body = api.request_json("PATCH", path, timeout=10, body=patch,
                                             content_type="application/merge-patch+json")
            if status == 200:
                return
            if status != 409:
                raise ApiServerError(path, status, str(body)[:300])
        raise ApiServerError(path, 409, "event kept changing under us")


class CreationBudget:
    """A token bucket: ``burst`` creations at once, then ``per_second``; thread-safe.

    >>> budget = CreationBudget(per_second=1.0, burst=2)
    >>> budget.take(), budget.take(), budget.take()
    (True, True, False)
    """

    def __init__(self, *, per_second: float = 2.0, burst: int = 20, clock: Clock = SYSTEM_CLOCK) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError(f"per_second must be positive and burst at least 1, got {per_second}, {burst}")
        self._rate, self._burst, self._clock = per_second, float(burst), clock
        self._tokens, self._at = float(burst), clock.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True
