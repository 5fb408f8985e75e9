"""Talking to the local kube-apiserver from the benchmark: clients, raw JSON calls, call counting.

The benchmark uses the official client (``kubernetes``) configured from the
local cluster's admin kubeconfig, with a connection pool sized for concurrent
use. Bulk work (creating 100k Leases) goes through the same client's urllib3
pool as plain JSON, skipping model serialisation, as lockcore and the webhook
do on their hot paths. :class:`CountingPool` counts the real HTTP requests a
client sends, which is how lockcore's API calls per operation are measured.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from kubernetes import client, config


def admin_client(kubeconfig: Path, *, pool_size: int = 64, context: str | None = None) -> client.ApiClient:
    """An official ApiClient for ``kubeconfig`` with ``pool_size`` keep-alive connections."""
    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return client.ApiClient(cfg)


class CountingPool:
    """Wraps an ApiClient's urllib3 pool and counts each real HTTP request by method.

    Install with :meth:`install`; ``counts`` maps ``"GET"``, ``"POST"``... to
    the number of requests sent since the last :meth:`reset`.
    """

    def __init__(self, inner: urllib3.PoolManager) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.paths: list[tuple[str, str]] = []

    @classmethod
    def install(cls, api: client.ApiClient) -> CountingPool:
        """Put a counting wrapper in front of ``api``'s pool and return it."""
        counting = cls(api.rest_client.pool_manager)
        api.rest_client.pool_manager = counting  # type: ignore[assignment]
        return counting

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.counts[method.upper()] += 1
            self.paths.append((method.upper(), urlsplit(url).path))
        return self._inner.request(method, url, *args, **kwargs)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.paths.clear()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def raw_call(api: client.ApiClient, method: str, path: str, body: Any = None,
             *, timeout: float = 30.0) -> tuple[int, Any]:
    """Send one JSON request through ``api``'s pool and auth; returns (status, decoded body)."""
    cfg = api.configuration
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    for auth in cfg.auth_settings().values():
        if auth.get("in") == "header" and auth.get("value"):
            headers[str(auth["key"])] = str(auth["value"])
    resp = api.rest_client.pool_manager.request(
        method, cfg.host.rstrip("/") + path, headers=headers, timeout=timeout, retries=False,
        body=json.dumps(body).encode() if body is not None else None,
    )
    data = json.loads(resp.data) if resp.data else None
    return int(resp.status), data


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    """Create namespace ``name`` if it does not exist."""
    status, body = raw_call(api, "POST", "/api/v1/namespaces",
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    if status not in (201, 409):
        raise RuntimeError(f"creating namespace {name}: HTTP {status}: {body}")


def create_all(api: client.ApiClient, items: Iterable[tuple[str, dict[str, Any]]], *,
               concurrency: int = 32) -> int:
    """POST every ``(collection path, object)`` with ``concurrency`` threads; returns the count.

    An object that already exists (409) counts as created, so a rerun is idempotent.
    """

    def post(item: tuple[str, dict[str, Any]]) -> None:
        path, obj = item
        status, body = raw_call(api, "POST", path, obj)
        if status not in (201, 409):
            raise RuntimeError(f"POST {path}: HTTP {status}: {str(body)[:300]}")

    done = 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(post, items, chunksize=64):
            done += 1
    return done
