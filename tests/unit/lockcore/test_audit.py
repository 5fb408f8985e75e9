"""The audit record and its views: the log line, auditAnnotations, the Event (body, name, key), the properties."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockcore.audit import (
    EVENT_COMPONENT,
    EVENT_REASON,
    AuditEntry,
    BlockedWrite,
    event_body,
    event_key,
    event_name,
    event_namespace,
)
from lockcore.kube import DNS_SUBDOMAIN

AT = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=timezone.utc)
WRITE = BlockedWrite(user="bob", operation="UPDATE", group="apps", kind="Deployment", namespace="shop",
                     name="web", lease="lg.deployment.web.apps", holder="t42", declared_txn="t9", mode="warn",
                     reason="not-in-transaction")
writes = st.builds(BlockedWrite, **{f.name: st.text(max_size=40) for f in fields(BlockedWrite)})


@given(writes)
def test_what_the_webhook_builds_the_cli_reads_back(write: BlockedWrite) -> None:
    body = event_body(write, name="e", namespace="ns", at=AT, api_version="v1")
    assert AuditEntry.from_event(body) == AuditEntry(write, time="2026-03-04T05:06:07Z", count=1,
                                                     first_seen="2026-03-04T05:06:07Z")


def test_event_body_fields() -> None:
    body = event_body(WRITE, name="web.leasegate.abc", namespace="shop", at=AT, api_version="apps/v1",
                      object_uid="u-1")
    assert body["metadata"] == {"name": "web.leasegate.abc", "namespace": "shop", "annotations": WRITE.annotations()}
    assert body["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                      "namespace": "shop", "uid": "u-1"}
    assert (body["reason"], body["type"], body["action"], body["count"]) == (
        EVENT_REASON, "Warning", "UpdateBlocked", 1)
    assert body["source"] == {"component": EVENT_COMPONENT} and body["message"] == WRITE.message()
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-03-04T05:06:07Z"


def test_cluster_scoped_object_has_no_namespace_or_uid_when_unknown() -> None:
    cluster_scoped = BlockedWrite(**{**vars(WRITE), "namespace": "", "kind": "Namespace", "group": ""})
    body = event_body(cluster_scoped, name="n", namespace="default", at=AT, api_version="v1")
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Namespace", "name": "web"}


@pytest.mark.parametrize(("event", "time", "count"), [
    ({"lastTimestamp": "2026-01-01T00:00:02Z", "firstTimestamp": "2026-01-01T00:00:00Z", "count": 3},
     "2026-01-01T00:00:02Z", 3),
    ({"eventTime": "2026-01-01T00:00:01.000000Z"}, "2026-01-01T00:00:01.000000Z", 1),
    ({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "count": None}, "2026-01-01T00:00:00Z", 1),
    ({}, "", 1),
])
def test_time_and_count_of_an_event(event: dict[str, Any], time: str, count: int) -> None:
    entry = AuditEntry.from_event(event)
    assert (entry.time, entry.count, entry.write) == (time, count, BlockedWrite.from_annotations({}))


@pytest.mark.parametrize(("txn", "involved"), [("t42", True), ("t9", True), ("t1", False), ("", True)])
def test_involves_holder_or_declared(txn: str, involved: bool) -> None:
    # "" is declared_txn of writes that declared none; the CLI never asks for it (no --txn means all).
    write = WRITE if txn != "" else BlockedWrite(**{**vars(WRITE), "declared_txn": ""})
    assert write.involves(txn) is involved


def test_as_json_is_flat() -> None:
    assert AuditEntry(WRITE, time="t", count=2, first_seen="f").as_json() == {
        "time": "t", "count": 2, "first_seen": "f", "last_seen": "t", **vars(WRITE)}


@given(writes)
def test_properties_round_trip(write: BlockedWrite) -> None:
    assert BlockedWrite.from_properties(write.properties()) == write
    assert BlockedWrite.from_annotations(write.annotations()) == write


def test_every_view_names_the_same_fields() -> None:
    # One list of fields (the dataclass): the log line, the Event and the ledger all carry each of them.
    names = [f.name for f in fields(BlockedWrite)]
    assert list(WRITE.log_fields()) == names
    assert list(WRITE.properties()) == [n.replace("_", "-") for n in names]
    assert list(WRITE.annotations()) == ["audit.leasegate.io/" + n.replace("_", "-") for n in names]
    assert WRITE.log_fields(uid="u1", latency_ms=1.5) == {**vars(WRITE), "uid": "u1", "latency_ms": 1.5}


@pytest.mark.parametrize(("declared", "holder", "expected"), [
    ("t9", "t42", {"decision": "warn", "reason": "not-in-transaction", "lease": "lg.deployment.web.apps",
                   "mode": "warn", "holder": "t42", "declared-txn": "t9"}),
    ("", "", {"decision": "warn", "reason": "not-in-transaction", "lease": "lg.deployment.web.apps",
              "mode": "warn"}),
])
def test_audit_annotations_carry_the_lock_fields_that_are_set(declared: str, holder: str,
                                                              expected: dict[str, str]) -> None:
    write = BlockedWrite(**{**vars(WRITE), "declared_txn": declared, "holder": holder})
    assert write.audit_annotations("warn") == expected


@given(writes, st.integers(min_value=0, max_value=10**9))
def test_event_name_is_a_valid_event_name(write: BlockedWrite, bucket: int) -> None:
    name = event_name(write, bucket)
    assert DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253


def test_event_name_follows_the_aggregation_key() -> None:
    other_user = BlockedWrite(**{**vars(WRITE), "user": "carol"})
    other_reason = BlockedWrite(**{**vars(WRITE), "reason": "other-transaction"})
    assert event_name(WRITE, 1) == event_name(other_reason, 1)  # the reason is not part of the key
    assert len({event_name(WRITE, 1), event_name(WRITE, 2), event_name(other_user, 1)}) == 3
    assert event_key(WRITE, 5) == ("shop", "apps", "Deployment", "web", "bob", "t42", "warn", 5)


@pytest.mark.parametrize(("namespace", "expected"), [("shop", "shop"), ("", "default")])
def test_event_namespace(namespace: str, expected: str) -> None:
    assert event_namespace(BlockedWrite(**{**vars(WRITE), "namespace": namespace})) == expected
