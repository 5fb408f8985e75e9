"""A blocked kubectl edit leaves every trace: JSON log line, metric, Event, API audit annotation."""

from __future__ import annotations

import json
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from lockcore.audit import EVENT_REASON, BlockedWrite
from lockcore.naming import LeaseRef, ResourceKey
from tests.support.cli import lockcore
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tools.localcluster import LocalCluster
from tools.localwebhook import RunningWebhook, lock, wait_for
from webhook.apiserver import ApiServer
from webhook.audit import EventRecorder
from webhook.outcome import Reason, Verdict
from webhook.review import AdmissionRequest
from webhook.settings import EnforcementMode, EventSettings

pytestmark = pytest.mark.integration
TXN = "leasegate.io/transaction"


def blocked_events(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    resp = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},reason={EVENT_REASON}", _preload_content=False)
    return list(json.loads(resp.data)["items"])


def audit_entries(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    entries = []
    for line in cluster.audit_log.read_text(errors="replace").splitlines():
        if name not in line or namespace not in line:
            continue
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if ref.get("namespace") == namespace and ref.get("name") == name:
            entries.append(entry)
    return entries


def test_blocked_kubectl_edit_is_audited_everywhere(
        guarded: str, api_client: ApiClientFactory, kubectl: KubectlRunner, deny_webhook: RunningWebhook,
        cluster: LocalCluster, tmp_path: Path) -> None:
    admin = api_client("admin")
    client.CoreV1Api(admin).create_namespaced_config_map(
        guarded, {"metadata": {"name": "cfg"}, "data": {"k": "v1"}}, _preload_content=False)
    client.CoreV1Api(admin).create_namespaced_config_map(
        guarded, {"metadata": {"name": "dry"}, "data": {"k": "v1"}}, _preload_content=False)
    lock(admin, ResourceKey("", "ConfigMap", guarded, "cfg"), "t7")
    lock(admin, ResourceKey("", "ConfigMap", guarded, "dry"), "t7")
    labels = {"result": "deny", "reason": "not-in-transaction", "mode": "deny"}
    before = deny_webhook.metric("leasegate_admission_decisions_total", **labels)

    # A dry run is judged the same but leaves no Event.
    dry = kubectl("annotate", "configmap", "dry", "-n", guarded, "x=1", "--dry-run=server", user="bob",
                  check=False)
    assert dry.returncode != 0 and "locked by transaction 't7'" in dry.stderr

    script = tmp_path / "editor.sh"
    script.write_text("#!/bin/sh\nsed -i 's/k: v1/k: v2/' \"$1\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    out = kubectl("edit", "configmap", "cfg", "-n", guarded, user="bob", env={"KUBE_EDITOR": str(script)},
                  check=False)
    assert out.returncode != 0 and "locked by transaction 't7'" in out.stderr

    # 1. the JSON log line
    def log_line() -> dict[str, Any] | None:
        for record in deny_webhook.log_records():
            if record.get("logger") == "leasegate.audit" and record.get("name") == "cfg" \
                    and record.get("namespace") == guarded:
                return record
        return None

    record = wait_for(log_line)
    assert record["user"] == "bob" and "developers" in record["groups"]
    assert (record["operation"], record["kind"], record["holder"], record["decision"], record["mode"]) == (
        "UPDATE", "ConfigMap", "t7", "deny", "deny")
    assert record["lease"] == f"{guarded}/lg.configmap.cfg" and record["declared_txn"] == ""
    assert record["reason"] == "not-in-transaction" and record["uid"] and record["latency_ms"] >= 0
    assert "data" not in record and "object" not in record  # never object bodies

    # 2. the metric (the dry run and the edit)
    assert deny_webhook.metric("leasegate_admission_decisions_total", **labels) >= before + 2
    assert deny_webhook.metric("leasegate_admission_duration_seconds_count") > 0

    # 3. the Event on the object, readable as a lockcore BlockedWrite
    events = wait_for(lambda: blocked_events(admin, guarded, "cfg"))
    event = events[0]
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "ConfigMap"
    assert event["involvedObject"]["uid"]
    blocked = BlockedWrite.from_annotations(event["metadata"]["annotations"])
    assert (blocked.user, blocked.holder, blocked.name, blocked.mode) == ("bob", "t7", "cfg", "deny")
    assert blocked_events(admin, guarded, "dry") == []

    # 4. the audit annotation in the API server's own audit log
    def annotated() -> dict[str, str] | None:
        for entry in audit_entries(cluster, guarded, "cfg"):
            annotations = entry.get("annotations") or {}
            if annotations.get("locks.leasegate.io/decision") == "deny":
                return dict(annotations)
        return None

    annotations = wait_for(annotated)
    assert annotations["locks.leasegate.io/holder"] == "t7"
    assert annotations["locks.leasegate.io/lease"] == f"{guarded}/lg.configmap.cfg"
    assert annotations["locks.leasegate.io/reason"] == "not-in-transaction"

    # 5. `lockcore audit` (the CLI an auditor runs) lists it from that Event
    listed = lockcore(cluster, "audit", "-n", guarded, "--txn", "t7", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = [row for row in json.loads(listed.stdout)["items"] if row["name"] == "cfg"]
    assert len(rows) == 1 and (rows[0]["user"], rows[0]["operation"], rows[0]["holder"]) == ("bob", "UPDATE", "t7")


def test_repeated_blocks_aggregate_into_one_event(
        guarded: str, api_client: ApiClientFactory, deny_webhook: RunningWebhook) -> None:
    admin, bob = api_client("admin"), api_client("bob")
    core = client.CoreV1Api(admin)
    core.create_namespaced_config_map(guarded, {"metadata": {"name": "cfg"}}, _preload_content=False)
    lock(admin, ResourceKey("", "ConfigMap", guarded, "cfg"), "t8")
    for i in range(6):
        try:
            client.CoreV1Api(bob).patch_namespaced_config_map("cfg", guarded, {"data": {"i": str(i)}})
        except client.ApiException:
            pass
    # The writes reach both workers, yet there is one Event per window (60 s of
    # wall-clock time; two only if the writes straddle a window boundary), and
    # every occurrence is counted exactly once.
    def settled() -> list[dict[str, Any]] | None:
        events = blocked_events(admin, guarded, "cfg")
        return events if sum(e.get("count") or 1 for e in events) == 6 else None

    events = wait_for(settled, timeout=20)
    window = float(deny_webhook.settings_env["LEASEGATE_EVENT_WINDOW_SECONDS"])
    buckets = [int(datetime.fromisoformat(e["firstTimestamp"].replace("Z", "+00:00")).timestamp() // window)
               for e in events]
    assert len(events) == len(set(buckets)) <= 2, events


def test_workers_and_replicas_share_one_event_per_window(
        namespace: str, api_client: ApiClientFactory) -> None:
    # Two recorders stand for two gunicorn workers (or replicas), each with its
    # own connection to the real API server, seeing the same blocked write.
    admin = api_client("admin")
    request = AdmissionRequest(uid="u", operation="UPDATE", group="", version="v1", kind="ConfigMap",
                               resource="configmaps", namespace=namespace, name="shared", username="bob")
    verdict = Verdict(allowed=False, reason=Reason.NOT_IN_TRANSACTION, mode=EnforcementMode.DENY, code=403,
                      lease=LeaseRef(namespace, "lg.configmap.shared"), holder="t9", would_deny=True)
    recorders = [EventRecorder(lambda: ApiServer(admin), EventSettings(window_seconds=3600), flush_seconds=0.2)
                 for _ in range(2)]
    for i in range(10):
        recorders[i % 2].record(request, verdict)
    for recorder in recorders:
        recorder.drain(timeout=10)
    events = wait_for(lambda: [e for e in blocked_events(admin, namespace, "shared")
                               if (e.get("count") or 1) == 10] or None, timeout=15)
    assert len(blocked_events(admin, namespace, "shared")) == 1 and len(events) == 1
