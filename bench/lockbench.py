"""lockcore against the real apiserver: API calls per operation, and cycles per second.

Calls are counted on the real HTTP requests the client sends
(:class:`bench.apiserver.CountingPool`), for :class:`lockcore.manager.LeaseManager`
and for the reference algorithm (:class:`bench.reference.ReferenceLeaseManager`)
side by side, in these scenarios:

* acquire / renew / release, uncontended (one client, fresh key);
* acquire of a key another transaction holds (refused);
* acquire of an expired key another transaction held (takeover);
* renew / release after another client of the same transaction renewed the
  lease in between (the manager's last-seen state is stale).

Cycles per second: acquire + release on distinct keys, 1 thread and 8 threads.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from bench.apiserver import CountingPool, admin_client, ensure_namespace, raw_call
from bench.reference import ReferenceLeaseManager
from lockcore.errors import AlreadyLockedError
from lockcore.lease import lease_body, utcnow
from lockcore.manager import LeaseManager
from lockcore.naming import LeaseRef, ResourceKey, lease_ref
from lockcore.settings import LockSettings

NAMESPACE = "bench-locks"
PRINCIPAL = "bench-admin"
TIMEOUT = 300


class _Impl(Protocol):
    def acquire(self, key: ResourceKey, txn: str, timeout: float) -> LeaseRef: ...
    def release(self, ref: LeaseRef, txn: str) -> None: ...


class _Side:
    """One implementation under test, with its counting client."""

    def __init__(self, name: str, kubeconfig: Path, settings: LockSettings) -> None:
        self.name = name
        self.api = admin_client(kubeconfig, pool_size=16)
        self.counter = CountingPool.install(self.api)
        self.settings = settings
        self.impl: LeaseManager | ReferenceLeaseManager
        if name == "lockcore":
            self.impl = LeaseManager(self.api, settings, principal=PRINCIPAL)
        else:
            self.impl = ReferenceLeaseManager(self.api, settings, principal=PRINCIPAL)

    def fresh(self) -> ResourceKey:
        return ResourceKey(group="", kind="ConfigMap", namespace=NAMESPACE,
                           name=f"{self.name}-{uuid.uuid4().hex[:12]}")

    def renew(self, ref: LeaseRef, key: ResourceKey, txn: str) -> None:
        if isinstance(self.impl, LeaseManager):
            self.impl.renew(ref, txn, TIMEOUT)
        else:
            self.impl.renew(ref, key, txn, TIMEOUT)

    def counted(self, action: Callable[[], Any]) -> int:
        self.counter.reset()
        try:
            action()
        except AlreadyLockedError:
            pass
        return self.counter.total


def _plant(api: Any, key: ResourceKey, settings: LockSettings, txn: str, *, age: float = 0,
           duration: int = TIMEOUT) -> None:
    """Create a Lease for ``key`` held by ``txn`` directly (another client's lock)."""
    ref = lease_ref(key, settings)
    body = lease_body(namespace=ref.namespace, name=ref.name, key=key, txn=txn, duration_seconds=duration,
                      now=utcnow() - timedelta(seconds=age), principal="someone-else",
                      profile=settings.profile)
    status, reply = raw_call(api, "POST", f"/apis/coordination.k8s.io/v1/namespaces/{ref.namespace}/leases",
                             body)
    if status != 201:
        raise RuntimeError(f"planting {ref}: HTTP {status}: {reply}")


def call_counts(side: _Side, other: _Side, *, samples: int = 5) -> dict[str, float]:
    """Mean real API calls per operation in each scenario (``other`` is a second client)."""
    totals: dict[str, int] = {}

    def add(name: str, count: int) -> None:
        totals[name] = totals.get(name, 0) + count

    impl, settings = side.impl, side.settings
    if isinstance(impl, LeaseManager):
        # The discovery documents the stamp needs are read once per manager: not per operation.
        warm = side.fresh()
        impl.release(impl.acquire(warm, "t-warm", TIMEOUT), "t-warm")
    for _ in range(samples):
        key = side.fresh()
        ref = lease_ref(key, settings)
        add("acquire_uncontended", side.counted(lambda: impl.acquire(key, "t-mine", TIMEOUT)))
        add("renew_uncontended", side.counted(lambda: side.renew(ref, key, "t-mine")))
        add("release_uncontended", side.counted(lambda: impl.release(ref, "t-mine")))

        key = side.fresh()
        _plant(side.api, key, settings, "t-other")
        add("acquire_held_by_other", side.counted(lambda: impl.acquire(key, "t-mine", TIMEOUT)))

        key = side.fresh()
        _plant(side.api, key, settings, "t-gone", age=120, duration=5)
        add("acquire_takeover_expired", side.counted(lambda: impl.acquire(key, "t-mine", TIMEOUT)))

        key = side.fresh()
        ref = lease_ref(key, settings)
        impl.acquire(key, "t-mine", TIMEOUT)
        time.sleep(0.002)
        other.renew(ref, key, "t-mine")  # the same txn's other client renews: our view is stale
        add("renew_after_other_renewed", side.counted(lambda: side.renew(ref, key, "t-mine")))
        time.sleep(0.002)
        other.renew(ref, key, "t-mine")
        add("release_after_other_renewed", side.counted(lambda: impl.release(ref, "t-mine")))
    return {name: round(count / samples, 2) for name, count in totals.items()}


def cycles_per_second(side: _Side, *, cycles: int, threads: int) -> dict[str, float]:
    """acquire + release on ``cycles`` distinct keys with ``threads`` threads."""
    keys = [side.fresh() for _ in range(cycles)]

    def cycle(key: ResourceKey) -> None:
        ref = side.impl.acquire(key, "t-cycle", TIMEOUT)
        side.impl.release(ref, "t-cycle")

    side.counter.reset()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(cycle, keys))
    seconds = time.perf_counter() - started
    return {"cycles": cycles, "threads": threads, "seconds": round(seconds, 2),
            "cycles_per_s": round(cycles / seconds, 1),
            "calls_per_cycle": round(side.counter.total / cycles, 2)}


def run(kubeconfig: Path, settings: LockSettings, *, cycles: int) -> dict[str, Any]:
    """The whole lockcore section: counts and cycles/s for lockcore and the reference."""
    sides = {name: _Side(name, kubeconfig, settings) for name in ("lockcore", "reference")}
    ensure_namespace(sides["lockcore"].api, NAMESPACE)
    out: dict[str, Any] = {"calls": {}, "cycles": {}}
    for name, side in sides.items():
        other = _Side(name, kubeconfig, settings)
        out["calls"][name] = call_counts(side, other)
    for threads in (1, 8):
        for name, side in sides.items():  # warm the pools before timing
            cycles_per_second(side, cycles=max(10, cycles // 10), threads=threads)
        for name, side in sides.items():
            out["cycles"][f"{name}_t{threads}"] = cycles_per_second(side, cycles=cycles, threads=threads)
    return out
