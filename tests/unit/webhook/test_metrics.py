"""webhook.metrics: built once, whatever the number of threads asking first."""

from __future__ import annotations

import subprocess
import sys

# Every thread of a fresh process asks for a metric at the same instant, as the
# first requests of a new gunicorn worker do. Building the metrics twice
# registers them twice (DuplicateTimeseries): the worker then fails to boot.
FIRST_REQUESTS = """
import threading, sys
import webhook.metrics as metrics
barrier = threading.Barrier(16)
errors = []
def first_request():
    barrier.wait()
    try:
        metrics.DECISIONS.labels("allow", "unlocked", "deny").inc()
        metrics.DURATION.observe(0.001)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=first_request) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
sys.exit(errors[0] if errors else 0)
"""


def test_concurrent_first_use_builds_the_metrics_once() -> None:
    for _ in range(12):
        done = subprocess.run([sys.executable, "-c", FIRST_REQUESTS], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr or done.stdout
