"""Prometheus metrics of the webhook (prometheus-client, gunicorn multiprocess mode).

Under gunicorn each worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR``; the health server aggregates them with
:func:`render_latest`. prometheus-client picks its multiprocess value class
when it is first imported, so this module imports it only when a metric is
first used (module ``__getattr__``): importing ``webhook.metrics`` early is
harmless, and :func:`webhook.serve.main` sets the directory before anything
records a sample. Without the variable (tests, a single process) the default
registry is used.

Example::

    >>> DECISIONS.labels(result="allow", reason="unlocked", mode="deny").inc()
"""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace
from typing import Any

_NAMES = ("DECISIONS", "DURATION", "REQUEST_BYTES", "BAD_REQUESTS", "LOOKUP_ERRORS", "CACHE_STALENESS",
          "CACHE_FALLBACKS", "EVENTS", "LEDGER")


_BUILD_LOCK = threading.Lock()
_BUILT: SimpleNamespace | None = None


def _metrics() -> SimpleNamespace:
    """Every metric, built (and prometheus-client imported) once, on first use.

    Under a lock: the first requests of a worker's threads arrive together,
    and two threads registering the same metric raise DuplicateTimeseries (a
    worker that fails to boot; ``functools.cache`` does not serialize callers).
    """
    global _BUILT
    if _BUILT is None:
        with _BUILD_LOCK:
            if _BUILT is None:
                _BUILT = _build()
    return _BUILT


def _build() -> SimpleNamespace:
    from prometheus_client import Counter, Histogram

    DECISIONS = Counter(
        "leasegate_admission_decisions_total",
        "Admission decisions by result (allow|deny|warn|dryrun), reason and enforcement mode.",
        ["result", "reason", "mode"],
    )
    DURATION = Histogram(
        "leasegate_admission_duration_seconds",
        "Time to answer an admission review, from body read to response built.",
        buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5),
    )
    REQUEST_BYTES = Histogram(
        "leasegate_admission_request_bytes",
        "Size of the admission request bodies read (object and oldObject make most of it).",
        buckets=(4096, 16384, 65536, 262144, 1048576, 4194304),
    )
    BAD_REQUESTS = Counter(
        "leasegate_admission_bad_requests_total",
        "Requests that were not a valid AdmissionReview, by HTTP status.",
        ["status"],
    )
    return SimpleNamespace(DECISIONS=DECISIONS, DURATION=DURATION, REQUEST_BYTES=REQUEST_BYTES,
                           BAD_REQUESTS=BAD_REQUESTS, **vars(_build_lookups_and_audit()))


def _build_lookups_and_audit() -> SimpleNamespace:
    from prometheus_client import Counter, Gauge

    LOOKUP_ERRORS = Counter(
        "leasegate_lease_lookup_errors_total", "Lease lookups that failed (API error or timeout)."
    )
    CACHE_STALENESS = Gauge(
        "leasegate_lease_cache_staleness_seconds",
        "Age of the lease cache's last proof of being current, seen at lookup (max over workers).",
        multiprocess_mode="livemax",
    )
    CACHE_FALLBACKS = Counter(
        "leasegate_lease_cache_fallbacks_total",
        "Cached-mode lookups answered by a live GET because the cache was not fresh enough.",
    )
    EVENTS = Counter(
        "leasegate_events_total",
        "WriteBlocked Events by outcome (created|aggregated|dropped|failed).",
        ["outcome"],
    )
    LEDGER = Counter(
        "leasegate_ledger_total",
        "Refusals the ledger handled, by outcome (written|requeued|dropped|failed); conflict counts 409s.",
        ["outcome"],
    )
    return SimpleNamespace(**{name: value for name, value in locals().items() if name in _NAMES})


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(_metrics(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def render_latest() -> tuple[bytes, str]:
    """The exposition of every worker's metrics (or this process's, when single-process)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    _metrics()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn ``child_exit`` hook)."""
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
