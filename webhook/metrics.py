"""Prometheus metrics of the webhook (prometheus-client, gunicorn multiprocess mode).

Under gunicorn each worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by :mod:`webhook.serve` before this module
is imported, which is what makes prometheus-client pick its multiprocess
value class); the health server aggregates them with
:func:`render_latest`. Without the variable (tests, a single process) the
default registry is used.

Example::

    >>> DECISIONS.labels(result="allow", reason="unlocked", mode="deny").inc()
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def render_latest() -> tuple[bytes, str]:
    """The exposition of every worker's metrics (or this process's, when single-process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn ``child_exit`` hook)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
