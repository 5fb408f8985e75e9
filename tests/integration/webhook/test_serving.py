"""Serving: malformed input is a clear 4xx and the worker keeps serving; TLS only; cert reload;
health/readiness; lookup-failure policy against a webhook that cannot read Leases."""

from __future__ import annotations

import http.client
import json
import platform
import socket
import ssl
import warnings
from pathlib import Path
from typing import Any

import pytest
import requests

from lockcore.kube import LOCKED_LABEL
from tests.support.admission import review as sample_review
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tests.support.webhooks import WebhookFactory
from tools.localcluster import LocalCluster, free_port
from tools.localwebhook import (
    RunningWebhook,
    grant_edit,
    guard,
    minor_page_faults,
    register_webhook,
    wait_for,
    wait_judged,
)
from webhook.certs import generate

pytestmark = pytest.mark.integration


def review(**request: Any) -> dict[str, Any]:
    """The shared sample review, in a namespace no test locks anything in."""
    return sample_review(**{"namespace": "nowhere", **request})


@pytest.mark.parametrize(("body", "content_type", "status", "fragment"), [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (json.dumps(review()).encode(), "text/plain", 415, "content type"),
    (json.dumps(review(uid=None)).encode(), "application/json", 400, "uid"),
    (json.dumps({**review(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(), "application/json", 400,
     "apiVersion"),
    (json.dumps(review(operation="EXPLODE")).encode(), "application/json", 400, "operation"),
    (b"x" * (5 * 1024 * 1024), "application/json", 413, "exceeds"),
])
def test_malformed_requests_get_a_clear_4xx_and_the_worker_keeps_serving(
        deny_webhook: RunningWebhook, body: bytes, content_type: str, status: int, fragment: str) -> None:
    resp = deny_webhook.post(body, content_type)
    assert resp.status_code == status and fragment in resp.json()["error"]
    ok = deny_webhook.post(json.dumps(review()).encode())
    assert ok.status_code == 200
    assert ok.json()["response"] == {"uid": "u-1", "allowed": True}
    assert deny_webhook.metric("leasegate_admission_bad_requests_total", status=str(status)) >= 1
    assert deny_webhook.alive()


def test_wrong_method_and_path(deny_webhook: RunningWebhook) -> None:
    assert requests.get(deny_webhook.url, verify=str(deny_webhook.ca_file), timeout=5).status_code == 405
    assert deny_webhook.post(b"{}", "application/json").status_code == 400


def test_admission_port_is_tls_only_1_2_plus(deny_webhook: RunningWebhook) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"http://127.0.0.1:{deny_webhook.port}/validate", data=b"{}", timeout=5)
    ctx = ssl.create_default_context(cafile=str(deny_webhook.ca_file))
    with socket.create_connection(("127.0.0.1", deny_webhook.port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
        old = ssl.create_default_context(cafile=str(deny_webhook.ca_file))
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)), socket.create_connection(("127.0.0.1", deny_webhook.port)) as raw:
        old.wrap_socket(raw, server_hostname="127.0.0.1").close()


def test_health_readiness_and_metrics(deny_webhook: RunningWebhook) -> None:
    assert deny_webhook.health("/healthz").status_code == 200
    ready = deny_webhook.health("/readyz")
    assert ready.status_code == 200 and "HTTP 200" in ready.text
    assert "leasegate_admission_decisions_total" in deny_webhook.metrics()
    sized = deny_webhook.metric("leasegate_admission_request_bytes_count")
    body = json.dumps(review()).encode()
    assert deny_webhook.post(body).status_code == 200
    assert deny_webhook.metric("leasegate_admission_request_bytes_count") >= sized + 1
    assert deny_webhook.metric("leasegate_admission_request_bytes_bucket", le="4096.0") >= 1


def test_not_ready_and_lookup_failure_when_the_api_server_is_unreachable(
        webhook_factory: WebhookFactory, cluster: LocalCluster, tmp_path: Path) -> None:
    kubeconfig = json.loads(cluster.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    broken = tmp_path / "kubeconfig"
    broken.write_text(json.dumps(kubeconfig))
    running = webhook_factory("unreachable", kubeconfig=str(broken), lease_lookup="consistent",
                              lookup_failure_policy="deny")
    assert running.health("/readyz").status_code == 503
    answer = running.post(json.dumps(review()).encode()).json()["response"]
    assert answer["allowed"] is False and answer["status"]["code"] == 503
    assert "lookup_failure_policy=deny" in answer["status"]["message"]
    assert running.metric("leasegate_lease_lookup_errors_total") >= 1


@pytest.mark.parametrize("policy", ["deny", "allow"])
def test_lookup_failure_policy_with_real_writes(
        policy: str, webhook_factory: WebhookFactory, api_client: ApiClientFactory, namespace: str,
        kubectl: KubectlRunner) -> None:
    # bob has no right to read Leases: every lookup of this webhook fails with HTTP 403.
    running = webhook_factory(f"forbidden-{policy}", user="bob", lease_lookup="consistent",
                              lookup_failure_policy=policy)
    admin = api_client("admin")
    register_webhook(admin, running)
    grant_edit(admin, namespace)  # before guarding: under policy deny, this webhook refuses everything
    kubectl("create", "configmap", "cfg", "-n", namespace, user="alice")
    kubectl("label", "configmap", "cfg", f"{LOCKED_LABEL}=t1", "-n", namespace, user="alice")  # as acquire leaves it
    guard(admin, namespace, running.key)
    wait_judged(admin, running, namespace)
    out = kubectl("annotate", "configmap", "cfg", "x=1", "-n", namespace, user="alice", check=False)
    if policy == "deny":
        assert out.returncode != 0
        assert "could not read lock lease" in out.stderr and "lookup_failure_policy=deny" in out.stderr
    else:
        assert out.returncode == 0
        assert "Warning:" in out.stderr and "lookup_failure_policy=allow" in out.stderr


def test_rotated_certificate_is_served_without_restart(webhook_factory: WebhookFactory) -> None:
    running = webhook_factory("rotation", lease_lookup="consistent")
    body = json.dumps(review())
    headers = {"Content-Type": "application/json"}
    old_ca = running.ca_file.read_bytes()
    # An established keep-alive connection, verified with the old CA...
    kept = http.client.HTTPSConnection("127.0.0.1", running.port, timeout=5,
                                       context=ssl.create_default_context(cadata=old_ca.decode()))
    kept.request("POST", "/validate", body, headers)
    assert kept.getresponse().read() and True
    generate(running.cert_dir, "leasegate", "leasegate-system")
    new_cert = (running.cert_dir / "tls.crt").read_text()

    def serving_new_cert() -> bool:
        return ssl.get_server_certificate(("127.0.0.1", running.port)).strip() == new_cert.strip()

    wait_for(serving_new_cert, timeout=10)  # new handshakes get the new certificate
    # ...keeps working after the rotation: nothing in flight is dropped.
    kept.request("POST", "/validate", body, headers)
    assert kept.getresponse().status == 200
    kept.close()
    assert running.post(body.encode()).status_code == 200  # verified with the new CA
    (running.cert_dir / "old-ca.crt").write_bytes(old_ca)
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(running.url, data=b"{}", verify=str(running.cert_dir / "old-ca.crt"), timeout=5)
    assert running.alive()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc malloc's")
def test_large_reviews_reuse_memory_the_worker_kept(webhook_factory: WebhookFactory) -> None:
    """A worker serving 400 KB reviews copies each a dozen times; with the default
    retain_freed_memory_mib it reuses memory it kept, where glibc's defaults return
    it to the kernel and fault it in again for every review (bench/RESULTS.md: twice
    the latency). Counted as the worker's minor page faults per review."""
    data = {"blob": "x" * 200_000}
    body = json.dumps(review(object={"metadata": {"name": "cfg"}, "data": data},
                             oldObject={"metadata": {"name": "cfg"}, "data": data})).encode()
    per_review: dict[int, float] = {}
    for retain in (0, 16):
        running = webhook_factory(f"retain-{retain}", workers=1, retain_freed_memory_mib=retain,
                                  lease_lookup="consistent")
        (worker,) = wait_for(running.worker_pids, timeout=20)
        with requests.Session() as session:
            def send(times: int) -> None:
                for _ in range(times):
                    answer = session.post(running.url, data=body, verify=str(running.ca_file), timeout=10,
                                          headers={"Content-Type": "application/json"})
                    assert answer.status_code == 200 and answer.json()["response"]["allowed"] is True
            send(20)  # warm up: imports, caches, the heap's first growth
            before = minor_page_faults(worker)
            send(50)
            per_review[retain] = (minor_page_faults(worker) - before) / 50
    print(f"minor page faults per 400 KB review: retain 0 MiB {per_review[0]:.0f}, 16 MiB {per_review[16]:.0f}")
    assert per_review[16] * 4 < per_review[0], per_review
