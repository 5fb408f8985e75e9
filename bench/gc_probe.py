"""Why a full lease cache slows the webhook: CPython's cyclic GC versus 100k cached LeaseStates.

A micro-experiment, not part of ``make bench``: it parses the benchmark's own
AdmissionReview bodies (bench/out/bodies, written by a run) in one thread,
keeping the last 8 parsed reviews alive as 2 workers x 4 threads would, while
the process holds a lease index shaped like
:class:`webhook.leases.CachedLeaseSource`'s, and measures the time spent in
garbage collection (``gc.callbacks``) and the RSS the index costs, for:

* ``none``: no index (the baseline's heap);
* ``leasestate``: 100k :class:`lockcore.lease.LeaseState` (what the cache holds);
* ``leasestate+freeze``: the same, then ``gc.freeze()`` (index moved to the
  permanent generation, never scanned again);
* ``none+freeze``: no index, ``gc.freeze()`` after start-up;
* ``leasestate+freeze+threshold``: also ``gc.set_threshold(50_000, 10, 10)``;
* ``tuples``: 100k plain tuples of str/float (untracked by the GC), from which a
  LeaseState would be built only for the lease a request asks about.

Run: ``python -m bench.gc_probe [--leases 100000] [--rounds 25]``; each variant
runs in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import load_bodies
from bench.population import lease_items
from bench.servers import rss_mb
from lockcore.lease import LeaseState
from lockcore.settings import LockSettings

VARIANTS = ("none", "none+freeze", "leasestate", "leasestate+freeze", "leasestate+freeze+threshold",
            "tuples")
THRESHOLD = (50_000, 10, 10)  # gen0 collections every 50k allocations instead of 700


def build_index(variant: str, leases: int) -> dict[tuple[str, str], Any]:
    index: dict[tuple[str, str], Any] = {}
    count = 0 if variant.startswith("none") else leases
    for serial, (_, body) in enumerate(lease_items(0, count, LockSettings())):
        body["metadata"]["resourceVersion"] = str(serial)
        state = LeaseState.from_json(json.loads(json.dumps(body)))  # as decoded from the wire
        key = (state.namespace, state.name)
        if variant == "tuples":
            expiry = state.expires_at()
            index[key] = (state.holder, expiry.timestamp() if expiry else 0.0, state.principal)
        else:
            index[key] = state
    if "+freeze" in variant:
        gc.freeze()
    if "+threshold" in variant:
        gc.set_threshold(*THRESHOLD)
    return index


def measure(variant: str, leases: int, rounds: int, bodies_dir: Path) -> dict[str, Any]:
    import os

    bodies = load_bodies(bodies_dir)
    before = rss_mb(os.getpid())
    index = build_index(variant, leases)
    rss_index = rss_mb(os.getpid()) - before
    spent = {"total": 0.0, "gen2": 0, "longest": 0.0, "start": 0.0}

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            spent["start"] = time.perf_counter()
            return
        took = time.perf_counter() - spent["start"]
        spent["total"] += took
        if info["generation"] == 2:
            spent["gen2"] += 1
            spent["longest"] = max(spent["longest"], took)

    gc.collect()
    gc.callbacks.append(callback)
    alive: list[Any] = []
    started = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            alive.append(json.loads(body))
            del alive[:-8]
    elapsed = time.perf_counter() - started
    gc.callbacks.remove(callback)
    return {"variant": variant, "leases": len(index), "index_rss_mb": round(rss_index, 1),
            "parses_per_s": round(rounds * len(bodies) / elapsed), "gc_share": round(spent["total"] / elapsed, 3),
            "gen2_runs": spent["gen2"], "longest_gen2_ms": round(spent["longest"] * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--bodies", type=Path, default=Path(__file__).with_name("out") / "bodies")
    parser.add_argument("--variant", choices=VARIANTS, help="(internal) run one variant here")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(measure(args.variant, args.leases, args.rounds, args.bodies)))
        return 0
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, "-m", "bench.gc_probe", "--variant", variant,
                              "--leases", str(args.leases), "--rounds", str(args.rounds),
                              "--bodies", str(args.bodies)], capture_output=True, text=True, check=True)
        print(out.stdout.strip(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
