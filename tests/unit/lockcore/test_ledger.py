"""lockcore/ledger.py: the record as an OpenReports result, the pure merge, --since and the filters."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockcore.audit import AuditEntry, BlockedWrite
from lockcore.ledger import (
    DROPPED_ANNOTATION,
    AuditFilter,
    Bounds,
    Tally,
    entry_of,
    ledger_entries,
    merge_report,
    parse_since,
    report_path,
    report_result,
)
from lockcore.naming import ResourceKey

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
WRITE = BlockedWrite(user="bob", operation="UPDATE", group="apps", kind="Deployment", namespace="shop",
                     name="web", lease="shop/lg.deployment.web.apps", holder="t42", declared_txn="", mode="deny",
                     reason="not-in-transaction")
BOUNDS = Bounds(retention=timedelta(days=30), max_results=500)
writes = st.builds(BlockedWrite, **{f.name: st.text(max_size=30) for f in fields(BlockedWrite)})


def write(**changes: str) -> BlockedWrite:
    return BlockedWrite(**{**vars(WRITE), **changes})


def batch(*items: tuple[BlockedWrite, int, datetime]) -> dict[BlockedWrite, tuple[Tally, dict[str, Any]]]:
    out = {}
    for w, count, at in items:
        tally = Tally(count, at, at)
        out[w] = (tally, report_result(w, tally, api_version="apps/v1"))
    return out


def counts(report: dict[str, Any]) -> dict[BlockedWrite, int]:
    return {e.write: e.count for e in ledger_entries([report])}


@given(writes, st.integers(min_value=1, max_value=10**6))
def test_a_result_reads_back_as_its_record(w: BlockedWrite, count: int) -> None:
    result = report_result(w, Tally(count, T0, T0 + timedelta(hours=1)), api_version="v1")
    assert entry_of(result) == AuditEntry(w, time="2026-03-01T01:00:00Z", count=count,
                                          first_seen="2026-03-01T00:00:00Z")
    assert all(isinstance(v, str) for v in result["properties"].values())  # map[string]string in the CRD


@pytest.mark.parametrize(("mode", "outcome"), [("deny", "fail"), ("warn", "warn"), ("dryrun", "warn")])
def test_result_fields(mode: str, outcome: str) -> None:
    result = report_result(write(mode=mode), Tally(2, T0, T0), api_version="apps/v1", object_uid="u1")
    assert (result["source"], result["policy"], result["rule"], result["result"]) == (
        "leasegate", "shop/lg.deployment.web.apps", "not-in-transaction", outcome)
    assert result["resources"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                    "namespace": "shop", "uid": "u1"}]
    assert result["timestamp"] == {"seconds": int(T0.timestamp()), "nanos": 0}
    props = result["properties"]
    assert (props["user"], props["operation"], props["holder"], props["mode"], props["count"]) == (
        "bob", "UPDATE", "t42", mode, "2")


def test_counts_add_to_the_same_record_and_the_window_widens() -> None:
    first = merge_report({"metadata": {"namespace": "shop"}}, batch((WRITE, 3, T0)), BOUNDS, T0)
    second = merge_report(first, batch((WRITE, 4, T0 + timedelta(minutes=5)), (write(user="carol"), 1, T0)),
                          BOUNDS, T0)
    assert counts(second) == {WRITE: 7, write(user="carol"): 1}
    (entry,) = [e for e in ledger_entries([second]) if e.write == WRITE]
    assert (entry.first_seen, entry.time) == ("2026-03-01T00:00:00Z", "2026-03-01T00:05:00Z")
    assert second["kind"] == "Report" and second["metadata"]["name"] == "leasegate-blocked-writes"
    assert second["summary"] == {"pass": 0, "fail": 2, "warn": 0, "error": 0, "skip": 0}
    assert second["metadata"]["annotations"][DROPPED_ANNOTATION] == "0"


def test_cluster_scoped_objects_go_to_a_cluster_report() -> None:
    report = merge_report({"metadata": {}}, batch((write(namespace="", kind="Namespace", group=""), 1, T0)),
                          BOUNDS, T0)
    assert report["kind"] == "ClusterReport" and "namespace" not in report["results"][0]["resources"][0]


def test_results_past_retention_go() -> None:
    old = merge_report({"metadata": {}}, batch((write(user="old"), 1, T0)), BOUNDS, T0)
    later = T0 + timedelta(days=31)
    report = merge_report(old, batch((WRITE, 1, later)), BOUNDS, later)
    assert counts(report) == {WRITE: 1}


def test_the_oldest_go_first_over_the_cap_and_are_counted() -> None:
    bounds = Bounds(retention=timedelta(days=30), max_results=3)
    items = [(write(user=f"u{i}"), 1, T0 + timedelta(seconds=i)) for i in range(5)]
    report = merge_report({"metadata": {"annotations": {DROPPED_ANNOTATION: "4"}}}, batch(*items), bounds, T0)
    assert sorted(w.user for w in counts(report)) == ["u2", "u3", "u4"]
    assert report["metadata"]["annotations"][DROPPED_ANNOTATION] == "6"  # 4 before, 2 now
    assert report["configuration"] == {"limits": {"maxResults": 3}}


def test_a_report_stays_within_its_byte_budget_whatever_the_names() -> None:
    bounds = Bounds(retention=timedelta(days=30), max_results=2000, max_bytes=64 * 1024)
    items = [(write(user="u" * 200 + str(i), name="n" * 253), 1, T0 + timedelta(seconds=i)) for i in range(400)]
    report = merge_report({"metadata": {}}, batch(*items), bounds, T0)
    assert len(json.dumps(report["results"])) <= 64 * 1024
    kept = len(report["results"])
    assert 0 < kept < 400 and report["metadata"]["annotations"][DROPPED_ANNOTATION] == str(400 - kept)


def test_foreign_results_are_not_read_as_ours() -> None:
    report = {"metadata": {}, "results": [{"source": "kyverno", "policy": "p", "properties": {"count": "9"}}]}
    assert ledger_entries([report]) == []


@pytest.mark.parametrize(("text", "seconds"), [("7d", 7 * 86400), ("1h", 3600), ("30m", 1800), ("45s", 45),
                                               ("1d12h", 129600), (" 2h ", 7200)])
def test_parse_since(text: str, seconds: int) -> None:
    assert parse_since(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "1w", "-1h", "1.5h", "1h junk", "soon"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid --since"):
        parse_since(text)


ENTRY = AuditEntry(write(declared_txn="t9"), time="2026-03-01T00:10:00Z", count=2, first_seen="2026-03-01T00:00:00Z")


@pytest.mark.parametrize(("wanted", "matches"), [
    (AuditFilter(), True),
    (AuditFilter(since=T0 + timedelta(minutes=5)), True),
    (AuditFilter(since=T0 + timedelta(minutes=15)), False),
    (AuditFilter(txn="t42"), True), (AuditFilter(txn="t9"), True), (AuditFilter(txn="t1"), False),
    (AuditFilter(user="bob"), True), (AuditFilter(user="alice"), False),
    (AuditFilter(obj=ResourceKey("apps", "Deployment", "shop", "web")), True),
    (AuditFilter(obj=ResourceKey("", "Deployment", "shop", "web")), False),
    (AuditFilter(obj=ResourceKey("apps", "Deployment", "shop", "api")), False),
    (AuditFilter(obj=ResourceKey("apps", "Deployment", "prod", "web")), False),
    (AuditFilter(since=T0, txn="t42", user="bob", obj=ResourceKey("apps", "Deployment", "shop", "web")), True),
])
def test_filters(wanted: AuditFilter, matches: bool) -> None:
    assert wanted.matches(ENTRY) is matches


def test_report_paths() -> None:
    assert report_path("shop", "") == "/apis/openreports.io/v1alpha1/namespaces/shop/reports"
    assert report_path("") == "/apis/openreports.io/v1alpha1/clusterreports/leasegate-blocked-writes"
