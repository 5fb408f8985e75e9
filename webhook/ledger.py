"""The ledger writer: every refusal, counted into OpenReports reports off the admission path.

:meth:`Ledger.record` (on the request thread) only adds one to an in-memory
tally of the record (:class:`lockcore.audit.BlockedWrite`: user, object, lock,
reason, holder, declared transaction, mode, operation); it never waits for the
API server and never raises. A background thread of each worker process
flushes the tallies every ``flush_seconds``: for each namespace touched it
reads the ledger's Report (the ClusterReport for cluster-scoped objects),
merges the new counts in (:func:`lockcore.ledger.merge_report`: add, prune by
retention and cap) and writes it back conditional on the resourceVersion it
read; a 409 (another worker or replica wrote meanwhile) reads and merges
again, so nobody's counts are overwritten. A flush that fails for a reason
that may pass (no answer, 5xx, 429, conflicts that do not settle) puts its
counts back for the next one; one the API server refuses for good (403, 404:
the CRDs or the namespace are missing; 422) is dropped, logged and counted.

Loss bound: a worker stopped gracefully flushes before it exits
(:meth:`Ledger.close`, from gunicorn's ``worker_exit`` hook); a process killed
outright loses what it recorded since its last flush, at most
``flush_seconds`` of refusals. dryRun requests are not recorded (nothing was
written), as for Events.

Example::

    ledger = Ledger(lambda: ApiServer.connect(settings.kubeconfig), settings.ledger)
    ledger.record(request, verdict)   # returns at once
    ledger.close()                    # flush what is left (shutdown)
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lockcore.audit import BlockedWrite
from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.ledger import Bounds, Tally, merge_report, report_path, report_result
from webhook.apiserver import ApiServer, ApiServerError
from webhook.audit import blocked_write
from webhook.outcome import Verdict
from webhook.review import AdmissionRequest
from webhook.settings import LedgerSettings

log = logging.getLogger("leasegate.ledger")
#: Distinct records held between two flushes; beyond it a new record is dropped (and counted).
MAX_PENDING = 20000
_ATTEMPTS = 30  # read-merge-write rounds per report and flush before giving the counts back
_TRANSIENT = frozenset({409, 429, 500, 502, 503, 504})
_TIMEOUT = 5.0  # seconds per API call: a flush at shutdown must fit in the graceful timeout


@dataclass
class _Pending:
    tally: Tally
    api_version: str
    object_uid: str


class Ledger:
    """Counts refusals in memory; a background thread merges them into the reports (see module doc)."""

    def __init__(self, connect: Callable[[], ApiServer], settings: LedgerSettings, *,
                 clock: Clock = SYSTEM_CLOCK, max_pending: int = MAX_PENDING,
                 on_outcome: Callable[[str, int], None] | None = None) -> None:
        self._connect = connect
        self._api: ApiServer | None = None
        self._settings = settings
        self._bounds = Bounds(timedelta(seconds=settings.retention_seconds), settings.max_results)
        self._clock = clock
        self._max_pending = max_pending
        self._on_outcome = on_outcome or (lambda outcome, n: None)
        self._pending: dict[BlockedWrite, _Pending] = {}
        self._lock = threading.Lock()  # guards _pending and the thread's start
        self._flushing = threading.Lock()  # one flush at a time (the thread's, close()'s, a test's)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, request: AdmissionRequest, verdict: Verdict) -> None:
        """Count a (would-be) refused write; no-op for dryRun requests and writes nobody refused."""
        if request.dry_run or not verdict.would_deny or not request.name:
            return
        write, now = blocked_write(request, verdict), self._clock.now()
        with self._lock:
            self._add(write, _Pending(Tally(1, now, now), request.api_version, request.object_uid))
            if self._thread is None or not self._thread.is_alive():
                # Started lazily so that a gunicorn worker, not the pre-fork master, owns it.
                self._thread = threading.Thread(target=self._run, name="ledger", daemon=True)
                self._thread.start()

    def _add(self, write: BlockedWrite, pending: _Pending) -> None:
        """Add ``pending`` to the tally of ``write`` (caller holds the lock)."""
        held = self._pending.get(write)
        if held is not None:
            held.tally = held.tally.plus(pending.tally)
        elif len(self._pending) < self._max_pending:
            self._pending[write] = pending
        else:
            self._on_outcome("dropped", pending.tally.count)

    def pending(self) -> int:
        """Refusals recorded and not yet written."""
        with self._lock:
            return sum(p.tally.count for p in self._pending.values())

    def _run(self) -> None:
        while not self._clock.wait(self._stop, self._settings.flush_seconds):
            self.flush()

    def flush(self, deadline: float = float("inf")) -> None:
        """Write every tally recorded so far into the reports (blocks; the background thread calls it).

        Scopes not begun by ``deadline`` (the clock's ``monotonic()``) are kept for the next flush.
        """
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return
            if self._api is None:
                self._api = self._connect()
            by_scope: dict[str, dict[BlockedWrite, _Pending]] = defaultdict(dict)
            for write, pending in batch.items():
                by_scope[write.namespace][write] = pending
            for namespace, items in by_scope.items():
                if self._clock.monotonic() < deadline:
                    self._flush_scope(self._api, namespace, items)
                else:
                    self._requeue(items)

    def _flush_scope(self, api: ApiServer, namespace: str, items: dict[BlockedWrite, _Pending]) -> None:
        count = sum(p.tally.count for p in items.values())
        try:
            self._merge(api, namespace, items)
        except ApiServerError as exc:
            if exc.status is None or exc.status in _TRANSIENT:
                self._requeue(items)
                log.warning("ledger: could not write %s, will retry: %s", report_path(namespace), exc)
            else:
                self._on_outcome("failed", count)
                log.warning("ledger: %d refusals not recorded in %s: %s", count, report_path(namespace), exc)
        except Exception as exc:  # noqa: BLE001 - the ledger must never take the worker down
            self._on_outcome("failed", count)
            log.exception("ledger: %d refusals not recorded in %s: %s", count, report_path(namespace), exc)
        else:
            self._on_outcome("written", count)

    def _requeue(self, items: dict[BlockedWrite, _Pending]) -> None:
        """Keep ``items`` for the next flush."""
        with self._lock:
            for write, pending in items.items():
                self._add(write, pending)
        self._on_outcome("requeued", sum(p.tally.count for p in items.values()))

    def _merge(self, api: ApiServer, namespace: str, items: dict[BlockedWrite, _Pending]) -> None:
        """Read, merge, write conditionally; on 409 again (raises ApiServerError when it cannot)."""
        batch = {write: (p.tally, report_result(write, p.tally, api_version=p.api_version, object_uid=p.object_uid))
                 for write, p in items.items()}
        path = report_path(namespace)
        for attempt in range(_ATTEMPTS):
            status, stored = api.request_json("GET", path, timeout=_TIMEOUT)
            if status == 404:
                empty: dict[str, Any] = {"metadata": {"namespace": namespace} if namespace else {}}
                method, target = "POST", report_path(namespace, "")
                body = merge_report(empty, batch, self._bounds, self._clock.now())
            elif status == 200 and isinstance(stored, dict):
                method, target, body = "PUT", path, merge_report(stored, batch, self._bounds, self._clock.now())
            else:
                raise ApiServerError(path, status, str(stored)[:300])
            status, answer = api.request_json(method, target, timeout=_TIMEOUT, body=body)
            if status in (200, 201):
                return
            if status != 409:
                raise ApiServerError(target, status, str(answer)[:300])
            self._on_outcome("conflict", 1)
            self._clock.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # spread the writers out
        raise ApiServerError(path, 409, f"still conflicting after {_ATTEMPTS} attempts")

    def close(self, timeout: float = 10.0) -> None:
        """Stop the background thread and flush what is left (graceful shutdown), starting no
        report's write after ``timeout`` seconds (each write takes at most a few API calls)."""
        deadline = self._clock.monotonic() + timeout
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush(deadline)
        left = self.pending()
        if left:
            self._on_outcome("dropped", left)
            log.warning("ledger: %d refusals not recorded: shutting down, the API server did not answer in time", left)
