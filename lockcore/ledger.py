"""The ledger of blocked writes: the record as an OpenReports result, and the reports that hold them.

Events last an hour; the ledger keeps every refusal for weeks. The webhook
(webhook/ledger.py) aggregates what it refused by record (user, object,
lock, reason, and the rest of :class:`~lockcore.audit.BlockedWrite`) and
merges the counts into one ``Report`` (``openreports.io/v1alpha1``) per
namespace, named :data:`REPORT_NAME`, for namespaced objects and one
``ClusterReport`` for cluster-scoped ones. Each result is a view of the
record: source ``leasegate``, the lock as policy, the reason as rule,
``fail`` (deny) or ``warn`` (warn, dryrun), the object as resource, and as
properties every field of the record plus ``count``, ``first-seen`` and
``last-seen``. This module is the one definition of that format: the
writer's pure merge (:func:`merge_report`) and the reader
(:func:`list_ledger`, what ``kubectl lock audit`` prints) both live here.

Example::

    >>> from datetime import datetime, timezone
    >>> w = BlockedWrite.from_properties({"user": "bob", "kind": "ConfigMap", "namespace": "shop",
    ...                                   "name": "cfg", "lease": "shop/lg.configmap.cfg", "mode": "deny"})
    >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> result = report_result(w, Tally(3, at, at), api_version="v1")
    >>> result["result"], result["properties"]["count"], entry_of(result).write == w
    ('fail', '3', True)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.audit import AuditEntry, BlockedWrite, list_blocked_writes, object_reference
from lockcore.kube import MANAGED_BY_LABEL, MANAGED_BY_VALUE, format_time
from lockcore.lease import parse_time
from lockcore.naming import ResourceKey

GROUP = "openreports.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
REPORT_NAME = "leasegate-blocked-writes"
SOURCE = "leasegate"
#: How many results a report dropped to stay within its bounds, over its life.
DROPPED_ANNOTATION = "leasegate.io/ledger-dropped"
#: A report's results stay under this many bytes of JSON, whatever the cap: far below the
#: API server's 1.5 MiB object limit (long names make results larger, not more numerous).
MAX_RESULTS_BYTES = 512 * 1024
_SINCE = re.compile(r"(\d+)(d|h|m|s)")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@dataclass(frozen=True)
class Tally:
    """How often a record was seen, and when first and last."""

    count: int
    first: datetime
    last: datetime

    def plus(self, other: Tally) -> Tally:
        """Both tallies as one (counts add, the window widens)."""
        return Tally(self.count + other.count, min(self.first, other.first), max(self.last, other.last))


@dataclass(frozen=True)
class Bounds:
    """What a report may hold: results seen within ``retention``, at most ``max_results`` of them."""

    retention: timedelta
    max_results: int
    max_bytes: int = MAX_RESULTS_BYTES


def report_path(namespace: str, name: str = REPORT_NAME) -> str:
    """The REST path of the ledger's Report in ``namespace``, or its ClusterReport when ``namespace`` is "".

    ``name=""`` is the collection (where a report is created).

    >>> report_path("shop"), report_path("", "")
    ('/apis/openreports.io/v1alpha1/namespaces/shop/reports/leasegate-blocked-writes', '/apis/openreports.io/v1alpha1/clusterreports')
    """
    base = f"/apis/{API_VERSION}/namespaces/{quote(namespace)}/reports" if namespace \
        else f"/apis/{API_VERSION}/clusterreports"
    return f"{base}/{quote(name)}" if name else base


def report_result(write: BlockedWrite, tally: Tally, *, api_version: str, object_uid: str = "") -> dict[str, Any]:
    """``write`` seen ``tally.count`` times as one OpenReports result."""
    resource = object_reference(write, api_version=api_version, object_uid=object_uid)
    return {
        "source": SOURCE,
        "policy": write.lease or write.holder,
        "rule": write.reason,
        "result": "fail" if write.mode == "deny" else "warn",
        "message": write.message(),
        "resources": [resource],
        "timestamp": {"seconds": int(tally.last.timestamp()), "nanos": 0},
        "properties": {**write.properties(), "count": str(tally.count), "first-seen": format_time(tally.first),
                       "last-seen": format_time(tally.last)},
    }


def entry_of(result: Mapping[str, Any]) -> AuditEntry:
    """The audit entry a ledger result records (what ``kubectl lock audit`` prints)."""
    properties = result.get("properties") or {}
    return AuditEntry(BlockedWrite.from_properties(properties), time=str(properties.get("last-seen") or ""),
                      count=_int(properties.get("count"), 1), first_seen=str(properties.get("first-seen") or ""))


def tally_of(result: Mapping[str, Any]) -> Tally | None:
    """The count and window a stored result holds (None if it is not one of ours)."""
    entry = entry_of(result)
    first, last = parse_time(entry.first_seen), parse_time(entry.time)
    if result.get("source") != SOURCE or first is None or last is None:
        return None
    return Tally(entry.count, first, last)


def merge_report(report: Mapping[str, Any], batch: Mapping[BlockedWrite, tuple[Tally, dict[str, Any]]],
                 bounds: Bounds, now: datetime) -> dict[str, Any]:
    """``report`` with ``batch`` (record -> its new tally and result) added, pruned to ``bounds``.

    Counts add to a stored result of the same record; results not seen within
    the retention go; then the oldest (by last seen) go until at most
    ``max_results`` remain in ``max_bytes``, and those are counted in
    :data:`DROPPED_ANNOTATION`. Pure: the writer reads, merges and writes
    back conditionally, and merges again on a conflict.
    """
    merged: dict[BlockedWrite, tuple[Tally, dict[str, Any]]] = {}
    for stored in report.get("results") or []:
        tally = tally_of(stored)
        if tally is not None:
            merged[entry_of(stored).write] = (tally, stored)
    for write, (tally, result) in batch.items():
        if write in merged:
            tally = merged[write][0].plus(tally)
            result = {**result, "timestamp": {"seconds": int(tally.last.timestamp()), "nanos": 0},
                      "properties": {**result["properties"], "count": str(tally.count),
                                     "first-seen": format_time(tally.first), "last-seen": format_time(tally.last)}}
        merged[write] = (tally, result)
    cutoff = now - bounds.retention
    live = sorted((pair for pair in merged.values() if pair[0].last >= cutoff), key=lambda pair: pair[0].last)
    kept = _within(live, bounds)
    metadata = report.get("metadata") or {}
    dropped = _int((metadata.get("annotations") or {}).get(DROPPED_ANNOTATION), 0) + len(live) - len(kept)
    return _report_body(metadata, [result for _tally, result in kept], dropped, bounds)


def _within(results: list[tuple[Tally, dict[str, Any]]], bounds: Bounds) -> list[tuple[Tally, dict[str, Any]]]:
    """The newest results that fit the count and byte bounds (``results`` oldest first)."""
    kept = results[-bounds.max_results:]
    sizes = [len(json.dumps(result)) for _tally, result in kept]
    total, start = sum(sizes), 0
    while total > bounds.max_bytes and start < len(kept):
        total -= sizes[start]
        start += 1
    return kept[start:]


def _report_body(metadata: Mapping[str, Any], results: list[dict[str, Any]], dropped: int,
                 bounds: Bounds) -> dict[str, Any]:
    namespace = str(metadata.get("namespace") or "")
    meta: dict[str, Any] = {**metadata, "name": REPORT_NAME,
                            "labels": {**(metadata.get("labels") or {}), MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                            "annotations": {**(metadata.get("annotations") or {}), DROPPED_ANNOTATION: str(dropped)}}
    outcomes = [r["result"] for r in results]
    return {
        "apiVersion": API_VERSION,
        "kind": "Report" if namespace else "ClusterReport",
        "metadata": meta,
        "source": SOURCE,
        "configuration": {"limits": {"maxResults": bounds.max_results}},
        "summary": {"pass": 0, "fail": outcomes.count("fail"), "warn": outcomes.count("warn"), "error": 0,
                    "skip": 0},
        "results": results,
    }


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def parse_since(text: str) -> timedelta:
    """A look-back window: ``7d``, ``1h``, ``30m``, ``45s`` or combinations (``1d12h``).

    >>> parse_since("7d"), parse_since("1h30m")
    (datetime.timedelta(days=7), datetime.timedelta(seconds=5400))
    >>> parse_since("soon")
    Traceback (most recent call last):
    ...
    ValueError: invalid --since 'soon' (e.g. 7d, 1h, 30m)
    """
    parts = _SINCE.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"invalid --since {text!r} (e.g. 7d, 1h, 30m)")
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))


@dataclass(frozen=True)
class AuditFilter:
    """What ``kubectl lock audit`` asks for: last seen since ``since``, and optionally a txn, a user, an object.

    >>> AuditFilter(user="bob").matches(AuditEntry(BlockedWrite.from_properties({"user": "bob"}), "", 1))
    True
    """

    since: datetime | None = None
    txn: str | None = None
    user: str | None = None
    obj: ResourceKey | None = None

    def matches(self, entry: AuditEntry) -> bool:
        """Whether ``entry`` was last seen within the window and matches every filter given."""
        write, obj = entry.write, self.obj
        seen = parse_time(entry.time)
        return ((self.since is None or (seen is not None and seen >= self.since))
                and (not self.txn or write.involves(self.txn)) and (not self.user or write.user == self.user)
                and (obj is None or (write.group, write.kind, write.namespace, write.name)
                     == (obj.group, obj.kind, obj.namespace, obj.name)))


def ledger_entries(reports: Iterable[Mapping[str, Any]]) -> list[AuditEntry]:
    """Every leasegate result of ``reports`` as an audit entry."""
    return [entry_of(result) for report in reports for result in report.get("results") or []
            if result.get("source") == SOURCE]


def list_ledger(api: client.ApiClient, namespace: str | None) -> list[AuditEntry] | None:
    """The ledger's entries in ``namespace`` (every report if None); None when it has no reports at all.

    A namespace's view is its Report; all namespaces add the ClusterReport. No
    reports (or no OpenReports API) is None, so the caller can fall back to Events.
    """
    objects = client.CustomObjectsApi(api)
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
    reports: list[dict[str, Any]] = []
    try:
        if namespace:
            response: Any = objects.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "reports", label_selector=selector, _preload_content=False)
            reports += json.loads(response.data).get("items") or []
        else:
            for plural in ("reports", "clusterreports"):
                response = objects.list_cluster_custom_object(GROUP, VERSION, plural, label_selector=selector,
                                                              _preload_content=False)
                reports += json.loads(response.data).get("items") or []
    except ApiException as exc:
        if exc.status == 404:
            return None  # the OpenReports CRDs are not installed
        raise
    named = [r for r in reports if (r.get("metadata") or {}).get("name") == REPORT_NAME]
    return ledger_entries(named) if named else None


def blocked_writes(api: client.ApiClient, namespace: str | None, wanted: AuditFilter) -> list[AuditEntry]:
    """The blocked writes ``wanted`` asks for, oldest first: from the ledger, or from Events when it has none.

    >>> blocked_writes(api_client, "shop", AuditFilter(since=utcnow() - parse_since("7d")))  # doctest: +SKIP
    [AuditEntry(write=BlockedWrite(user='bob', ...), time='2026-01-01T00:00:00Z', count=2, first_seen=...)]
    """
    entries = list_ledger(api, namespace)
    if entries is None:
        entries = list_blocked_writes(api, namespace)
    return sorted((e for e in entries if wanted.matches(e)), key=lambda e: (e.time, e.first_seen))

