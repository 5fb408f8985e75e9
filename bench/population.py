"""A real lock population: N lock Leases created in the kube-apiserver, fast.

Each Lease is exactly what :class:`lockcore.manager.LeaseManager` writes
(:func:`lockcore.lease.lease_body` at :func:`lockcore.naming.lease_ref`), for
ConfigMaps ``pop-<i>`` spread over :data:`POP_NAMESPACES` namespaces, held by
live transactions. They are POSTed concurrently through one keep-alive pool;
the rate is measured and reported.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kubernetes import client

from bench.apiserver import create_all, ensure_namespace
from lockcore.lease import lease_body, utcnow
from lockcore.naming import ResourceKey, lease_ref
from lockcore.settings import LockSettings

POP_NAMESPACES = 10
PRINCIPAL = "bench-populator"


def pop_namespace(index: int) -> str:
    return f"bench-pop-{index % POP_NAMESPACES}"


def lease_items(start: int, stop: int, settings: LockSettings) -> Iterator[tuple[str, dict[str, Any]]]:
    """(collection path, Lease) for population members ``start`` .. ``stop - 1``."""
    now = utcnow()
    for i in range(start, stop):
        key = ResourceKey(group="", kind="ConfigMap", namespace=pop_namespace(i), name=f"pop-{i:06d}")
        ref = lease_ref(key, settings)
        body = lease_body(namespace=ref.namespace, name=ref.name, key=key, txn=f"pop-txn-{i % 997}",
                          duration_seconds=3 * 3600, now=now, principal=PRINCIPAL,
                          profile=settings.profile)
        yield f"/apis/coordination.k8s.io/v1/namespaces/{ref.namespace}/leases", body


def grow(api: client.ApiClient, current: int, target: int, settings: LockSettings,
         *, concurrency: int = 32) -> dict[str, float]:
    """Create Leases ``current`` .. ``target - 1``; returns count, seconds and rate."""
    for n in range(POP_NAMESPACES):
        ensure_namespace(api, pop_namespace(n))
    if target <= current:
        return {"created": 0, "seconds": 0.0, "per_second": 0.0}
    started = time.perf_counter()
    created = create_all(api, lease_items(current, target, settings), concurrency=concurrency)
    seconds = time.perf_counter() - started
    return {"created": created, "seconds": round(seconds, 2), "per_second": round(created / seconds, 1)}
