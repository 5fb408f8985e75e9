"""Where the webhook reads lock Leases: a live GET, or a watch-fed cache.

Both sources answer :meth:`LeaseSource.lookup` with what
:func:`webhook.decision.decide` takes: :data:`~webhook.decision.ABSENT`, a
:class:`~lockcore.lease.LeaseState`, or :class:`~webhook.decision.LookupFailed`;
:meth:`LeaseSource.lookup_fresh` always asks the API server (a consistent
read), for the requests :func:`webhook.decision.trusts_cache` says a cache
cannot decide. :meth:`LeaseSource.lookup_target` finds the Leases of a
cluster-scoped object under a profile that keeps them in their holders'
namespaces (:attr:`~lockcore.profiles.LockProfile.cluster_leases_anywhere`):
every lock Lease whose name is that profile's scheme's for the object in the
Lease's own namespace (:meth:`~lockcore.profiles.NameScheme.target_of`).

* :class:`ConsistentLeaseSource`: one GET per request (with the configured
  timeout). Always current; costs an API round trip per admission request.
* :class:`CachedLeaseSource`: a LIST + WATCH of every lock Lease (selected by
  the existence of the transaction label, across namespaces) in a background
  thread, started lazily in each worker process (threads do not survive
  gunicorn's fork). Lookups are dictionary reads. Staleness is bounded: the
  watch is re-opened every ``0.6 * cache_max_staleness_seconds`` by the
  server's ``timeoutSeconds``, each (re)open or event proves the stream alive,
  and a lookup made when the last proof of life is older than
  ``cache_max_staleness_seconds`` (or before the first LIST completed) goes to
  the API server instead. See docs/INVARIANTS.md ("webhook").

Example::

    source = CachedLeaseSource(ApiServer.connect(s.kubeconfig), s.lookups, s.lock.lock_profile)
    source.lookup(LeaseRef("shop", "lg.configmap.cfg"))   # ABSENT, LeaseState or LookupFailed
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.kube import ALL_LEASES_PATH, lease_path
from lockcore.lease import LeaseState
from lockcore.naming import LeaseRef
from lockcore.profiles import LockProfile, NameScheme
from webhook.apiserver import ApiServer, ApiServerError
from webhook.outcome import ABSENT, LeaseLookupResult, LookupFailed
from webhook.settings import LeaseLookup, Lookups

log = logging.getLogger("leasegate.leases")

_LIST_PAGE = 1000


class LeaseSource(Protocol):
    """Reads the Lease a decision needs."""

    def lookup(self, ref: LeaseRef) -> LeaseLookupResult:
        """The Lease at ``ref``: ABSENT, its state, or LookupFailed. Never raises."""
        ...

    def lookup_fresh(self, ref: LeaseRef) -> LeaseLookupResult:
        """Like :meth:`lookup`, read from the API server (a consistent read)."""
        ...

    def lookup_target(self, target: str) -> list[LeaseState] | LookupFailed:
        """Every lock Lease, in any namespace, of the name scheme's ``target``. Never raises."""
        ...

    def close(self) -> None:
        """Stop background work, release connections."""
        ...


class ConsistentLeaseSource:
    """One live GET per lookup, bounded by ``lookup_timeout_seconds``.

    ``profile`` says which Leases are locks (its transaction label) and how
    they are named (:attr:`~lockcore.profiles.LockProfile.names`).
    """

    def __init__(self, api: ApiServer, lookups: Lookups, profile: LockProfile) -> None:
        self._api = api
        self._timeout = lookups.lookup_timeout_seconds
        self._selector = profile.txn_label
        self._names = profile.names

    def lookup(self, ref: LeaseRef) -> LeaseLookupResult:
        try:
            status, body = self._api.get_json(lease_path(ref.namespace, ref.name), timeout=self._timeout)
        except ApiServerError as exc:
            return LookupFailed(str(exc))
        if status == 404:
            return ABSENT
        if status != 200 or not isinstance(body, dict):
            message = body.get("message", "") if isinstance(body, dict) else ""
            return LookupFailed(f"GET lease {ref}: HTTP {status} {message}".strip())
        try:
            return LeaseState.from_json(body)
        except (ValueError, TypeError) as exc:
            return LookupFailed(f"lease {ref} is malformed: {exc}")

    lookup_fresh = lookup

    def lookup_target(self, target: str) -> list[LeaseState] | LookupFailed:
        """A label-selected LIST of every lock Lease (consistent), filtered by target."""
        found: list[LeaseState] = []
        query = {"labelSelector": self._selector, "limit": str(_LIST_PAGE)}
        try:
            while True:
                status, body = self._api.get_json(ALL_LEASES_PATH, timeout=self._timeout, query=query)
                if status != 200 or not isinstance(body, dict):
                    return LookupFailed(f"LIST lock leases: HTTP {status}")
                found += [s for s in map(_state, body.get("items") or [])
                          if s is not None and _target(self._names, s) == target]
                meta = body.get("metadata") or {}
                if not meta.get("continue"):
                    return found
                query = {**query, "continue": str(meta["continue"])}
        except ApiServerError as exc:
            return LookupFailed(str(exc))

    def close(self) -> None:
        self._api.close()


class CachedLeaseSource:
    """A watch-fed, in-memory index of lock Leases with bounded staleness.

    ``on_staleness`` is called with the cache's age on every lookup (a metric
    gauge); ``on_fallback`` whenever a lookup had to go to the API server.
    Staleness is measured on ``clock`` (monotonic seconds).
    """

    def __init__(
        self,
        api: ApiServer,
        lookups: Lookups,
        profile: LockProfile,
        *,
        on_staleness: Callable[[float], None] | None = None,
        on_fallback: Callable[[], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._api = api
        self._clock = clock
        self._live = ConsistentLeaseSource(api, lookups, profile)
        self._max_staleness = lookups.cache_max_staleness_seconds
        # The server ends each watch after this long; the re-open proves freshness.
        self._watch_seconds = max(1, int(lookups.cache_max_staleness_seconds * 0.6))
        self._connect_timeout = lookups.lookup_timeout_seconds
        self._selector = profile.txn_label  # existence selector
        self._on_staleness = on_staleness
        self._on_fallback = on_fallback
        self._names = profile.names
        self._leases: dict[tuple[str, str], LeaseState] = {}
        # target -> (namespace, name) -> state, for lookup_target (profiles with a name scheme).
        self._targets: dict[str, dict[tuple[str, str], LeaseState]] = {}
        self._alive_at = float("-inf")  # monotonic time of the last proof the cache is current
        self._started_pid = 0
        self._start_lock = threading.Lock()
        self._stop = threading.Event()

    # -- reads -------------------------------------------------------------

    def lookup(self, ref: LeaseRef) -> LeaseLookupResult:
        self._ensure_started()
        staleness = self._clock.monotonic() - self._alive_at
        if self._on_staleness is not None:
            self._on_staleness(min(staleness, 1e9))
        if staleness > self._max_staleness:
            if self._on_fallback is not None:
                self._on_fallback()
            return self._live.lookup(ref)
        state = self._leases.get((ref.namespace, ref.name))
        return ABSENT if state is None else state

    def lookup_fresh(self, ref: LeaseRef) -> LeaseLookupResult:
        return self._live.lookup(ref)

    def lookup_target(self, target: str) -> list[LeaseState] | LookupFailed:
        self._ensure_started()
        if self._clock.monotonic() - self._alive_at > self._max_staleness:
            if self._on_fallback is not None:
                self._on_fallback()
            return self._live.lookup_target(target)
        return list(self._targets.get(target, {}).values())

    def close(self) -> None:
        self._stop.set()
        self._live.close()

    # -- the watch thread ------------------------------------------------------

    def _ensure_started(self) -> None:
        # gunicorn forks workers; a thread started in another process is not ours.
        if self._started_pid == os.getpid():
            return
        with self._start_lock:
            if self._started_pid == os.getpid():
                return
            self._leases, self._targets = {}, {}
            self._alive_at = float("-inf")
            threading.Thread(target=self._run, name="lease-cache", daemon=True).start()
            self._started_pid = os.getpid()

    def _run(self) -> None:
        backoff = 0.2
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    resource_version = self._relist()
                resource_version = self._watch(resource_version)
                backoff = 0.2
            except _Expired:
                resource_version = ""  # 410 Gone: our version left the window; list again
            except Exception as exc:  # noqa: BLE001 - the thread must survive any failure
                log.warning("lease cache: %s; retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _relist(self) -> str:
        fresh: dict[tuple[str, str], LeaseState] = {}
        targets: dict[str, dict[tuple[str, str], LeaseState]] = {}
        query = {"labelSelector": self._selector, "limit": str(_LIST_PAGE)}
        while True:
            status, body = self._api.get_json(ALL_LEASES_PATH, timeout=30, query=query)
            if status != 200 or not isinstance(body, dict):
                raise ApiServerError(ALL_LEASES_PATH, status, str(body)[:200])
            for item in body.get("items") or []:
                self._store(fresh, targets, item)
            meta = body.get("metadata") or {}
            if not meta.get("continue"):
                break
            query = {**query, "continue": str(meta["continue"])}
        self._leases, self._targets = fresh, targets  # reference swaps: readers see old or new, never half
        # A full collection walks every tracked object, and a big index held
        # all request threads for 100 ms at a time (bench/RESULTS.md). The index
        # is long-lived: move it out of the collector's generations. The old
        # one is still freed by reference counting (it has no cycles).
        gc.freeze()
        self._proved_alive(self._clock.monotonic())
        log.info("lease cache: listed %d lock leases", len(fresh))
        return str(meta.get("resourceVersion") or "")

    def _watch(self, resource_version: str) -> str:
        query = {
            "labelSelector": self._selector,
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(self._watch_seconds),
        }
        opened = self._clock.monotonic()
        resp = self._api.stream(ALL_LEASES_PATH, query=query, connect_timeout=self._connect_timeout,
                                 read_timeout=self._watch_seconds + 2.0)
        # The server accepted a watch from our version: it will deliver every
        # change since, so the cache is as current as the moment we asked.
        self._proved_alive(opened)
        try:
            buffer = b""
            for chunk in resp.stream(64 * 1024, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        resource_version = self._apply(json.loads(line), resource_version)
                        self._proved_alive(self._clock.monotonic())
        finally:
            resp.release_conn()
        return resource_version

    def _proved_alive(self, moment: float) -> None:
        """Record a proof of freshness; report how stale the cache had become just before it."""
        previous, self._alive_at = self._alive_at, moment
        if self._on_staleness is not None:
            self._on_staleness(max(0.0, moment - previous) if previous != float("-inf") else 0.0)

    def _apply(self, event: dict[str, Any], resource_version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Expired()
            raise ApiServerError(ALL_LEASES_PATH, obj.get("code"), str(obj.get("message")))
        meta = obj.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED"):
            self._store(self._leases, self._targets, obj)
        elif kind == "DELETED":
            where = (str(meta.get("namespace")), str(meta.get("name")))
            self._leases.pop(where, None)
            self._targets.get(_target(self._names, None, *where) or "", {}).pop(where, None)
        return str(meta.get("resourceVersion") or resource_version)

    def _store(self, index: dict[tuple[str, str], LeaseState],
               targets: dict[str, dict[tuple[str, str], LeaseState]], obj: dict[str, Any]) -> None:
        state = _state(obj)
        if state is None:
            return
        index[(state.namespace, state.name)] = state
        target = _target(self._names, state)
        if target is not None:
            targets.setdefault(target, {})[(state.namespace, state.name)] = state


def _state(obj: dict[str, Any]) -> LeaseState | None:
    try:
        return LeaseState.from_json(obj, details=False)
    except (ValueError, TypeError) as exc:
        log.warning("lease cache: skipping malformed lease: %s", exc)
        return None


def _target(names: NameScheme | None, state: LeaseState | None, namespace: str = "", name: str = "") -> str | None:
    """The name scheme's target of a Lease (given as its state, or its namespace and name)."""
    if names is None:
        return None
    if state is not None:
        namespace, name = state.namespace, state.name
    return names.target_of(namespace, name)


class _Expired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): relist."""


def make_lease_source(lookups: Lookups, profile: LockProfile, api: ApiServer, **hooks: Any) -> LeaseSource:
    """The source ``lookups.lease_lookup`` asks for, of ``profile``'s Leases."""
    if lookups.lease_lookup is LeaseLookup.CACHED:
        return CachedLeaseSource(api, lookups, profile, **hooks)
    return ConsistentLeaseSource(api, lookups, profile)
