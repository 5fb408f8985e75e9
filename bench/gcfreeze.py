"""Experiment: ``leasegate-webhook`` with the garbage-collector fix proposed in bench/RESULTS.md.

Runs the unmodified webhook (:func:`webhook.serve.main`) with two changes
applied from outside, so the benchmark can measure the proposal before anyone
edits webhook/:

* each gunicorn worker calls ``gc.freeze()`` once initialised
  (``post_worker_init``): the interpreter's start-up heap (Flask, the
  kubernetes client's thousands of model classes...) moves to the permanent
  generation and is never scanned by a full collection again;
* :class:`webhook.leases.CachedLeaseSource` calls ``gc.freeze()`` after each
  LIST has filled the index, so 100k cached LeaseStates are not scanned either.

Run like the webhook: ``python -m bench.gcfreeze`` (configured by ``LEASEGATE_*``).
"""

from __future__ import annotations

import gc
from typing import Any

import webhook.leases
import webhook.serve


def _patch() -> None:
    original_options = webhook.serve.gunicorn_options

    def options(*args: Any, **kwargs: Any) -> dict[str, Any]:
        opts = original_options(*args, **kwargs)
        opts["post_worker_init"] = lambda worker: gc.freeze()
        return opts

    webhook.serve.gunicorn_options = options
    original_relist = webhook.leases.CachedLeaseSource._relist

    def relist(self: webhook.leases.CachedLeaseSource) -> str:
        version = original_relist(self)
        gc.freeze()
        return version

    webhook.leases.CachedLeaseSource._relist = relist  # type: ignore[method-assign]


if __name__ == "__main__":
    _patch()
    raise SystemExit(webhook.serve.main([]))
