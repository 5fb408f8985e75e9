"""Watch lock Leases and check, from the API server's side, how holders changed.

The watch sees every write to the Leases in one namespace, in order. Whenever
the holder of a Lease changes without a delete in between, the new holder took
it over; the taker's ``renewTime`` (its own clock at the takeover) must then be
later than the previous holder's ``renewTime + leaseDurationSeconds +
clock_skew`` (all clocks are one here). This check needs no client's log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client, watch

from lockcore.lease import LeaseState

END_MARKER = "zz-watch-end"


@dataclass
class LeaseWatchLog:
    events: int = 0
    holders: set[str] = field(default_factory=set)
    takeovers: int = 0
    early_takeovers: list[str] = field(default_factory=list)
    min_takeover_margin: float | None = None


class LeaseWatcher:
    """Record every Lease event in ``namespace`` until :meth:`finish`."""

    def __init__(self, api: client.ApiClient, namespace: str, skew_seconds: float) -> None:
        self.api = api
        self.namespace = namespace
        self.skew = skew_seconds
        self.log = LeaseWatchLog()
        self._last: dict[str, LeaseState] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("lease watch did not start")

    def finish(self, timeout: float = 30) -> LeaseWatchLog:
        """Write a marker Lease, wait until the watch has seen it, return the log."""
        leases = client.CoordinationV1Api(self.api)
        leases.create_namespaced_lease(self.namespace, client.V1Lease(
            metadata=client.V1ObjectMeta(name=END_MARKER), spec=client.V1LeaseSpec()))
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        if self._thread.is_alive():
            raise TimeoutError("lease watch never saw the end marker")
        return self.log

    def _run(self) -> None:
        try:
            leases = client.CoordinationV1Api(self.api)
            listed = leases.list_namespaced_lease(self.namespace)
            rv = listed.metadata.resource_version if listed.metadata else None
            self._ready.set()
            stream = watch.Watch().stream(
                leases.list_namespaced_lease, self.namespace, resource_version=rv,
                timeout_seconds=600,
            )
            for event in stream:
                obj: dict[str, Any] = event["raw_object"]
                if obj["metadata"]["name"] == END_MARKER:
                    return
                self._observe(event["type"], obj)
        except BaseException as exc:  # surfaced by finish()
            self._error = exc
            self._ready.set()

    def _observe(self, kind: str, obj: dict[str, Any]) -> None:
        self.log.events += 1
        state = LeaseState.from_json(obj)
        name = state.name
        if kind == "DELETED":
            self._last.pop(name, None)
            return
        if state.holder:
            self.log.holders.add(state.holder)
        before = self._last.get(name)
        self._last[name] = state
        if before is None or before.holder == state.holder:
            return
        self.log.takeovers += 1
        expiry = before.expires_at()
        if expiry is None or state.renew_time is None:
            self.log.early_takeovers.append(f"{name}: takeover without times {before} -> {state}")
            return
        margin = _seconds(state.renew_time, expiry) - self.skew
        if self.log.min_takeover_margin is None or margin < self.log.min_takeover_margin:
            self.log.min_takeover_margin = margin
        if margin <= 0:
            self.log.early_takeovers.append(
                f"{name}: {state.holder} took over at {state.renew_time} but {before.holder} "
                f"held it until {expiry} + {self.skew}s skew")


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()
