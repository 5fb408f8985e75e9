"""The ledger of blocked writes against the real API server: the CRDs, the counts, and a life beyond Events.

* the vendored OpenReports CRDs installed into the real kube-apiserver accept
  the reports the writer builds, unchanged, and refuse what the schema forbids;
* several writers (threads with a connection each, and the webhook's worker
  processes) refusing writes of the same objects: the counts sum exactly;
* with ``--event-ttl`` of seconds, once the Events are gone, ``kubectl lock
  audit --since 1h`` still lists every refused write, and the reports are
  there for ``kubectl get reports.openreports.io``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lockcore.audit import EVENT_REASON, BlockedWrite
from lockcore.lease import utcnow
from lockcore.ledger import GROUP, REPORT_NAME, VERSION, Bounds, Tally, ledger_entries, merge_report, report_result
from lockcore.naming import LeaseRef, ResourceKey
from tests.support.cli import plugin_env
from tests.support.cluster import ApiClientFactory, KubectlRunner, api_clients, kubectl_runner
from tests.support.figures import Figures
from tools.localcluster import LocalCluster, running
from tools.localwebhook import (
    OBJECT_SELECT_LABEL,
    RunningWebhook,
    as_body,
    grant_edit,
    guard,
    install_report_crds,
    lock,
    register_webhook,
    start_webhook,
    wait_for,
)
from webhook.apiserver import ApiServer
from webhook.audit import blocked_write
from webhook.ledger import Ledger
from webhook.outcome import Reason, Verdict
from webhook.review import AdmissionRequest
from webhook.settings import EnforcementMode, LedgerSettings

pytestmark = pytest.mark.integration
EVENT_TTL_SECONDS = 4


def reports(api: client.ApiClient, namespace: str = "") -> list[dict[str, Any]]:
    objects = client.CustomObjectsApi(api)
    resp: Any  # the raw response (_preload_content=False)
    if namespace:
        resp = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, "reports", _preload_content=False)
    else:
        resp = objects.list_cluster_custom_object(GROUP, VERSION, "clusterreports", _preload_content=False)
    return list(json.loads(resp.data)["items"])


def counts(api: client.ApiClient, namespace: str = "") -> Counter[tuple[str, str]]:
    """(user, object name) -> count, as the ledger in ``namespace`` (or the ClusterReport) has it."""
    tally: Counter[tuple[str, str]] = Counter()
    for entry in ledger_entries(reports(api, namespace)):
        tally[(entry.write.user, entry.write.name)] += entry.count
    return tally


def eventually_equal(read: Callable[[], Counter[tuple[str, str]]], expected: Counter[tuple[str, str]],
                     timeout: float = 20) -> None:
    """Poll ``read`` until it returns ``expected``; fail showing the last value otherwise."""
    try:
        wait_for(lambda: read() == expected, timeout=timeout)
    except TimeoutError:
        assert read() == expected


def refused(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Patch ConfigMap ``name``; True when the webhook refused it (403)."""
    try:
        client.CoreV1Api(api).patch_namespaced_config_map(name, namespace, {"data": {"x": "1"}},
                                                          _preload_content=False)
    except ApiException as exc:
        assert exc.status == 403, exc.body
        return True
    return False


def test_reports_validate_against_the_installed_crds(report_crds: None, namespace: str,
                                                     api_client: ApiClientFactory) -> None:
    admin = api_client("admin")
    objects = client.CustomObjectsApi(admin)
    now = utcnow()
    written: dict[str, tuple[dict[str, Any], Any]] = {}
    for scope in (namespace, ""):
        write = blocked_request(scope, "cfg" if scope else f"{namespace}-cluster")
        batch = {write: (Tally(3, now, now), report_result(write, Tally(3, now, now), api_version="v1",
                                                            object_uid="u-1"))}
        body = merge_report({"metadata": {"namespace": scope} if scope else {}}, batch,
                            Bounds(timedelta(days=30), 10), now)
        if scope:
            body["metadata"]["name"] = REPORT_NAME
            stored = objects.create_namespaced_custom_object(GROUP, VERSION, scope, "reports", body)
        else:
            body["metadata"]["name"] = f"{REPORT_NAME}-{namespace}"  # not the ledger's own ClusterReport
            stored = objects.create_cluster_custom_object(GROUP, VERSION, "clusterreports", body)
            objects.delete_cluster_custom_object(GROUP, VERSION, "clusterreports", body["metadata"]["name"])
        written[scope] = (body, stored)
    for body, stored in written.values():
        # Nothing pruned: every field the writer sets is in the schema.
        for key in ("source", "configuration", "summary", "results"):
            assert stored[key] == body[key], key
        assert stored["metadata"]["annotations"] == body["metadata"]["annotations"]
    bad = json.loads(json.dumps(written[namespace][0]))
    bad["metadata"] = {"name": "bad", "namespace": namespace}
    bad["results"][0]["result"] = "blocked"  # not one of pass|fail|warn|error|skip
    with pytest.raises(ApiException) as refused_write:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "reports", bad)
    assert refused_write.value.status == 422 and "results[0].result" in str(refused_write.value.body)


def api_client_for(cluster: LocalCluster) -> client.ApiClient:
    """A connection of its own, as each worker process has."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig))
    return api


def blocked_request(namespace: str, name: str, user: str = "bob") -> BlockedWrite:
    """The record a refusal of ``user``'s UPDATE of ``name`` makes (the webhook's own builder)."""
    return blocked_write(*refusal(namespace, name, user))


def refusal(namespace: str, name: str, user: str = "bob") -> tuple[AdmissionRequest, Verdict]:
    kind = "ConfigMap" if namespace else "Namespace"
    request = AdmissionRequest(uid="u", operation="UPDATE", group="", version="v1", kind=kind,
                               resource="configmaps" if namespace else "namespaces", namespace=namespace,
                               name=name, username=user)
    verdict = Verdict(allowed=False, reason=Reason.NOT_IN_TRANSACTION, mode=EnforcementMode.DENY, code=403,
                      lease=LeaseRef(namespace or "leasegate-system", f"lg.{kind.lower()}.{name}"), holder="t9",
                      would_deny=True)
    return request, verdict


def test_concurrent_writers_lose_no_count(report_crds: None, namespace: str, api_client: ApiClientFactory,
                                          cluster: LocalCluster) -> None:
    # Four writers, as four worker processes or replicas would be: each its own connection and
    # tallies, flushing every 50 ms while refusals arrive, into the same Report and ClusterReport.
    objects = [(namespace, f"cm{i}") for i in range(5)] + [("", f"{namespace}-ns{i}") for i in range(2)]
    outcomes: Counter[str] = Counter()
    guard_outcomes = threading.Lock()

    def outcome(name: str, n: int) -> None:
        with guard_outcomes:
            outcomes[name] += n

    settings = LedgerSettings(flush_seconds=0.05)
    ledgers = [Ledger(lambda: ApiServer(api_client_for(cluster)), settings, on_outcome=outcome) for _ in range(4)]
    per_writer = 150

    def write(ledger: Ledger, seed: int) -> None:
        for i in range(per_writer):
            ns, name = objects[(seed + i) % len(objects)]
            ledger.record(*refusal(ns, name, user=f"user{i % 2}"))

    threads = [threading.Thread(target=write, args=(ledger, n)) for n, ledger in enumerate(ledgers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ledger in ledgers:
        ledger.close()
    admin = api_client("admin")
    namespaced, cluster_wide = counts(admin, namespace), counts(admin)
    ours = sum(n for (_user, name), n in cluster_wide.items() if name.startswith(namespace))
    assert sum(namespaced.values()) + ours == 4 * per_writer, (namespaced, cluster_wide)
    assert outcomes["written"] == 4 * per_writer and outcomes["failed"] == outcomes["dropped"] == 0
    assert outcomes["conflict"] > 0, "the writers never raced: the test proved nothing"


def test_refusals_through_the_webhook_are_all_counted(report_crds: None, guarded: str,
                                                      api_client: ApiClientFactory,
                                                      deny_webhook: RunningWebhook) -> None:
    # Clients hammer refused writes of the same objects; the webhook's two worker processes
    # each tally and flush: the ledger's counts are exactly the 403s the clients saw.
    admin, bob = api_client("admin"), api_client("bob")
    names = [f"obj{i}" for i in range(4)]
    for name in names:
        client.CoreV1Api(admin).create_namespaced_config_map(guarded, as_body({"metadata": {"name": name}}),
                                                             _preload_content=False)
        lock(admin, ResourceKey("", "ConfigMap", guarded, name), "t5")
    seen: Counter[str] = Counter()
    guard_seen = threading.Lock()

    def hammer(offset: int) -> None:
        for i in range(30):
            name = names[(offset + i) % len(names)]
            if refused(bob, guarded, name):
                with guard_seen:
                    seen[name] += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(seen.values()) == 120
    expected = Counter({("bob", name): n for name, n in seen.items()})
    eventually_equal(lambda: counts(admin, guarded), expected)


@pytest.fixture(scope="module")
def short_events_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane of its own whose Events live seconds (``--event-ttl``), not an hour."""
    with running(tmp_path_factory.mktemp("event-ttl"),
                 extra_apiserver_args=[f"--event-ttl={EVENT_TTL_SECONDS}s"]) as local:
        yield local


def test_the_ledger_outlives_events(short_events_cluster: LocalCluster, tmp_path: Path) -> None:
    local = short_events_cluster
    with api_clients(local) as api_client:
        admin, bob = api_client("admin"), api_client("bob")
        install_report_crds(admin)
        webhook = start_webhook(tmp_path, local.kubeconfig, "ttl", lease_lookup="consistent")
        try:
            register_webhook(admin, webhook)
            namespace = "shop"
            client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": namespace}}))
            grant_edit(admin, namespace)
            guard(admin, namespace, webhook.key)
            expected = refuse_some_writes(admin, bob, namespace, webhook)
            # The reports hold every refusal before the Events are gone ...
            eventually_equal(lambda: counts(admin, namespace) + counts(admin), expected)
            assert webhook.metric("leasegate_events_total", outcome="created") > 0
            # ... and after: the API server deleted the Events, the ledger still knows.
            events = client.CoreV1Api(admin)
            wait_for(lambda: not events.list_event_for_all_namespaces(
                field_selector=f"reason={EVENT_REASON}").items, timeout=EVENT_TTL_SECONDS * 10)
            check_audit(kubectl_runner(local), local, namespace, expected)
        finally:
            webhook.stop()


def refuse_some_writes(admin: client.ApiClient, bob: client.ApiClient, namespace: str,
                       webhook: RunningWebhook) -> Counter[tuple[str, str]]:
    """bob's refused writes of two ConfigMaps and the admin's of a locked Namespace; (user, name) -> count."""
    expected: Counter[tuple[str, str]] = Counter()
    for name, times in (("web-config", 3), ("db-config", 2)):
        client.CoreV1Api(admin).create_namespaced_config_map(namespace, as_body({"metadata": {"name": name}}),
                                                             _preload_content=False)
        lock(admin, ResourceKey("", "ConfigMap", namespace, name), "t42")
        for _ in range(times):
            assert refused(bob, namespace, name)
            expected[("bob", name)] += 1
    # A cluster-scoped object: its refusals go to the ClusterReport.
    client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": "team-a",
                                                                   "labels": {OBJECT_SELECT_LABEL: webhook.key}}}))
    lock(admin, ResourceKey("", "Namespace", "", "team-a"), "t7")
    with pytest.raises(ApiException) as namespace_write:
        client.CoreV1Api(admin).patch_namespace("team-a", {"metadata": {"labels": {"x": "1"}}})
    assert namespace_write.value.status == 403
    expected[("admin", "team-a")] += 1
    return expected


def check_audit(kubectl: KubectlRunner, local: LocalCluster, namespace: str,
                expected: Counter[tuple[str, str]]) -> None:
    env = plugin_env(local)
    shown = json.loads(kubectl("lock", "audit", "--since", "1h", "-o", "json", env=env).stdout)["items"]
    listed = Counter({(i["user"], i["name"]): i["count"] for i in shown})
    assert listed == expected, shown
    for item in shown:
        assert item["first_seen"] <= item["last_seen"] and item["mode"] == "deny"
        assert item["reason"] == "not-in-transaction"
        assert (item["holder"], item["lease"]) == (
            ("t7", "leasegate-system/lgc.namespace.team-a") if item["name"] == "team-a"
            else ("t42", f"{namespace}/lg.configmap.{item['name']}"))
    only_web = json.loads(kubectl("lock", "audit", "cm/web-config", "-n", namespace, "--user", "bob",
                                  "--txn", "t42", "-o", "json", env=env).stdout)["items"]
    assert [(i["name"], i["count"]) for i in only_web] == [("web-config", 3)]
    got = kubectl("get", "reports.openreports.io", "-n", namespace, env=env).stdout
    assert REPORT_NAME in got and "FAIL" in got
    assert REPORT_NAME in kubectl("get", "clusterreports.openreports.io", env=env).stdout


def test_a_graceful_stop_writes_what_the_last_interval_saw(report_crds: None, namespace: str, cluster: LocalCluster,
                                                            api_client: ApiClientFactory, tmp_path: Path) -> None:
    # The loss bound's other half: with an interval far longer than the test, nothing is
    # written until the webhook is stopped (SIGTERM, as a rolling update does); then every
    # refusal is (gunicorn's worker_exit hook flushes each worker's ledger).
    admin, bob = api_client("admin"), api_client("bob")
    webhook = start_webhook(tmp_path, cluster.kubeconfig, f"graceful-{namespace[-6:]}",
                            lease_lookup="consistent", ledger_flush_seconds=3600)
    try:
        vwc = register_webhook(admin, webhook)
        grant_edit(admin, namespace)
        guard(admin, namespace, webhook.key)
        client.CoreV1Api(admin).create_namespaced_config_map(namespace, as_body({"metadata": {"name": "cfg"}}),
                                                             _preload_content=False)
        lock(admin, ResourceKey("", "ConfigMap", namespace, "cfg"), "t3")
        for _ in range(5):
            assert refused(bob, namespace, "cfg")
        assert counts(admin, namespace) == Counter()  # not flushed yet: the interval is an hour
    finally:
        webhook.stop()
    client.AdmissionregistrationV1Api(admin).delete_validating_webhook_configuration(vwc)
    assert counts(admin, namespace) == Counter({("bob", "cfg"): 5})


def test_killed_workers_lose_at_most_their_last_interval(report_crds: None, namespace: str, cluster: LocalCluster,
                                                        api_client: ApiClientFactory, tmp_path: Path,
                                                        figures: Figures) -> None:
    # The loss bound, measured: refusals arrive for a few seconds, then both workers are
    # SIGKILLed (no worker_exit, as an OOM kill or a node loss): what the ledger misses is at
    # most what arrived in the last flush interval (plus the time one flush takes).
    flush, margin = 2.0, 1.0
    admin, bob = api_client("admin"), api_client("bob")
    webhook = start_webhook(tmp_path, cluster.kubeconfig, f"kill-{namespace[-6:]}", lease_lookup="consistent",
                            ledger_flush_seconds=flush)
    try:
        vwc = register_webhook(admin, webhook)
        grant_edit(admin, namespace)
        guard(admin, namespace, webhook.key)
        client.CoreV1Api(admin).create_namespaced_config_map(namespace, as_body({"metadata": {"name": "cfg"}}),
                                                             _preload_content=False)
        lock(admin, ResourceKey("", "ConfigMap", namespace, "cfg"), "t3")
        refusals: list[float] = []
        until = time.monotonic() + 3 * flush
        while time.monotonic() < until:
            assert refused(bob, namespace, "cfg")
            refusals.append(time.monotonic())
        killed_at = time.monotonic()
        for pid in webhook.worker_pids():
            os.kill(pid, signal.SIGKILL)
        time.sleep(flush + margin)  # nothing more can arrive: the killed tallies are gone
        counted = counts(admin, namespace)[("bob", "cfg")]
    finally:
        webhook.stop()
    client.AdmissionregistrationV1Api(admin).delete_validating_webhook_configuration(vwc)
    lost = len(refusals) - counted
    in_last_interval = sum(1 for at in refusals if at > killed_at - flush - margin)
    figures(f"{len(refusals)} refusals, workers SIGKILLed: {counted} in the ledger, {lost} lost "
            f"(bound: the {in_last_interval} of the last {flush + margin:.0f} s)")
    assert 0 <= lost <= in_last_interval
