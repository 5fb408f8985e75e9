"""The running HTTPS webhook under bad input, slow clients, and with secrets passing through.

Every malformed request gets a clear 4xx (JSON body naming the problem) and a
log line; the workers keep serving (the same worker pids answer a valid review
afterwards). A slowloris client holding connections open must not starve
others, and no Secret value or object body ever reaches the webhook's log.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import uuid

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.naming import ResourceKey
from tests.support.admission import TXN_ANNOTATION, assert_well_formed, body, review
from tests.support.cluster import ApiClientFactory
from tests.support.figures import Figures
from tests.support.reliability import REL_KEY
from tools.localwebhook import RunningWebhook, grant_edit, guard, lock, register_webhook

pytestmark = pytest.mark.integration


def valid_answer(hook: RunningWebhook, namespace: str = "shop") -> dict[str, object]:
    uid = f"ok-{uuid.uuid4().hex[:8]}"
    resp = hook.post(body(uid=uid, namespace=namespace))
    assert resp.status_code == 200, resp.text
    return assert_well_formed(resp.json(), uid)


BAD = [
    ("not json", b"{not json", "application/json", 400, "not valid JSON"),
    ("json array", b"[1,2,3]", "application/json", 400, "JSON object"),
    ("wrong content type", body(), "text/plain", 415, "content type"),
    ("form content type", body(), "application/x-www-form-urlencoded", 415, "content type"),
    ("no content type", body(), "", 415, "content type"),
    ("missing uid", json.dumps(review(uid=None)).encode(), "application/json", 400, "uid"),
    ("empty uid", json.dumps(review(uid="")).encode(), "application/json", 400, "uid"),
    ("unknown operation", json.dumps(review(operation="PATCH")).encode(), "application/json", 400, "operation"),
    ("wrong apiVersion", json.dumps({**review(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
     "application/json", 400, "apiVersion"),
    ("no request", json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
     "application/json", 400, "request"),
    ("annotation not a string", json.dumps(review(object={"metadata": {"annotations": {TXN_ANNOTATION: 42}}})).encode(),
     "application/json", 400, "annotations"),
    ("deep nesting", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json", 413, "exceeds"),
    ("oversized", json.dumps(review(object={"metadata": {"name": "cfg"}, "data": {"x": "y" * 70_000}})).encode(),
     "application/json", 413, "exceeds"),
]


def test_bad_requests_get_clear_4xx_and_workers_keep_serving(rel_webhook: RunningWebhook,
                                                              figures: Figures) -> None:
    # Both workers up (on a loaded machine the second may still be booting when the first answers).
    workers = rel_webhook.wait_workers(2)
    assert len(workers) == 2
    for label, payload, content_type, status, fragment in BAD:
        resp = rel_webhook.post(payload, content_type)
        assert resp.status_code == status, f"{label}: HTTP {resp.status_code} {resp.text[:200]}"
        assert fragment.lower() in resp.json()["error"].lower(), f"{label}: {resp.text[:200]}"
        valid_answer(rel_webhook)
    logged = [r for r in rel_webhook.log_records() if "rejected malformed" in str(r.get("message", r))]
    assert len(logged) >= len(BAD), "every rejection is logged"
    assert rel_webhook.worker_pids() == workers, "no worker died or was replaced"
    figures(f"{len(BAD)} kinds of malformed request -> 4xx each, all logged, same 2 workers serving")


@pytest.mark.parametrize(("value", "fragment"), [
    ("t" * 100_000, "exceeds"),  # a huge annotation value: over the body cap
    ("not a txn!", ""),  # not a valid txn name: judged, denied as another transaction
    ("t1\n", ""),
])
def test_huge_or_invalid_annotation_values(rel_webhook: RunningWebhook, api_client: ApiClientFactory,
                                           namespace: str, value: str, fragment: str) -> None:
    lock(api_client("admin"), ResourceKey("", "ConfigMap", namespace, "cfg"), "t1")
    uid = f"ann-{uuid.uuid4().hex[:6]}"
    resp = rel_webhook.post(body(uid=uid, namespace=namespace,
                                 object={"metadata": {"name": "cfg", "annotations": {TXN_ANNOTATION: value}}}))
    if fragment:
        assert resp.status_code == 413 and fragment in resp.json()["error"]
    else:
        response = assert_well_formed(resp.json(), uid)
        assert response["allowed"] is False and response["status"]["code"] == 403
    valid_answer(rel_webhook)


def test_plain_http_to_the_admission_port_fails(rel_webhook: RunningWebhook) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{rel_webhook.port}/validate", data=body(),
                      headers={"Content-Type": "application/json"}, timeout=5)
    valid_answer(rel_webhook)


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_below_1_2_is_refused(rel_webhook: RunningWebhook, version: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(rel_webhook.ca_file))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let *this client* offer the old protocol at all
    with pytest.warns(DeprecationWarning):
        ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with socket.create_connection(("127.0.0.1", rel_webhook.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError) as info:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass
    # The server's protocol_version alert, not a client that could not speak it.
    assert "PROTOCOL_VERSION" in str(info.value).upper() or "UNSUPPORTED_PROTOCOL" in str(info.value).upper(), info.value


def test_tls_1_2_and_1_3_are_accepted(rel_webhook: RunningWebhook) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=str(rel_webhook.ca_file))
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", rel_webhook.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == version.name.replace("_", ".").replace("TLSv1.", "TLSv1.")


SLOW_CONNECTIONS = 12  # more than the webhook's 2 workers x 4 threads


def test_slowloris_does_not_starve_other_clients(rel_webhook: RunningWebhook, figures: Figures) -> None:
    ctx = ssl.create_default_context(cafile=str(rel_webhook.ca_file))
    slow: list[ssl.SSLSocket] = []
    refused_handshakes = 0
    answered: list[float] = []
    starved = 0
    try:
        for _ in range(SLOW_CONNECTIONS):
            raw = socket.create_connection(("127.0.0.1", rel_webhook.port), timeout=2)
            try:
                tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            except (TimeoutError, OSError):
                refused_handshakes += 1
                raw.close()
                continue
            tls.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\n")  # ...and never finish the headers
            slow.append(tls)
        for _ in range(5):
            for tls in slow:
                try:
                    tls.sendall(b"X-a: b\r\n")  # one more header line now and then
                except OSError:
                    pass
            started = time.monotonic()
            try:
                resp = requests.post(rel_webhook.url, data=body(uid="slow"), timeout=3,
                                     headers={"Content-Type": "application/json"},
                                     verify=str(rel_webhook.ca_file))
                assert_well_formed(resp.json(), "slow")
                answered.append(time.monotonic() - started)
            except requests.RequestException:
                starved += 1
    finally:
        for tls in slow:
            tls.close()
    figures(f"{len(slow)} slowloris connections held ({refused_handshakes} more could not even "
            f"complete TLS): {starved}/5 valid requests starved (3 s timeout), answered max "
            f"{max(answered, default=0) * 1000:.0f} ms")
    valid_answer(rel_webhook)  # once the slow clients leave, service is back
    assert starved == 0 and refused_handshakes == 0


def test_slow_request_is_cut_off_at_its_deadline(rel_webhook: RunningWebhook, figures: Figures) -> None:
    """A client still sending its request after request_read_timeout_seconds (5 s) is disconnected."""
    ctx = ssl.create_default_context(cafile=str(rel_webhook.ca_file))
    with socket.create_connection(("127.0.0.1", rel_webhook.port), timeout=2) as raw:
        started = time.monotonic()
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\n")
            closed = None
            while time.monotonic() - started < 15:
                try:
                    tls.sendall(b"X-a: b\r\n")
                    tls.settimeout(0.5)
                    if tls.recv(1) == b"":
                        closed = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = time.monotonic() - started
                    break
    figures(f"slowloris connection trickling headers closed after {closed or 0:.1f} s "
            "(request_read_timeout_seconds 5)")
    assert closed is not None and 4.5 <= closed <= 7.5
    valid_answer(rel_webhook)


def test_no_secret_values_or_object_bodies_in_logs(
    rel_webhook: RunningWebhook, api_client: ApiClientFactory, namespace: str
) -> None:
    admin = api_client("admin")
    register_webhook(admin, rel_webhook)
    guard(admin, namespace, REL_KEY)
    grant_edit(admin, namespace)
    secret_value = f"hunter2-{uuid.uuid4().hex}"
    key = ResourceKey("", "Secret", namespace, "db")
    core = client.CoreV1Api(admin)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "db"},
                                              "stringData": {"password": secret_value}})
    lock(admin, key, "t1")
    bob = client.CoreV1Api(api_client("bob"))
    with pytest.raises(ApiException) as denied:
        bob.patch_namespaced_secret("db", namespace, {"stringData": {"password": secret_value + "-2"},
                                                       "metadata": {"labels": {"x": secret_value[:20]}}})
    assert denied.value.status == 403
    # Also straight at the webhook, with the object body in the review.
    uid = f"sec-{uuid.uuid4().hex[:6]}"
    rel_webhook.post(body(uid=uid, namespace=namespace, name="db",
                          kind={"group": "", "version": "v1", "kind": "Secret"},
                          resource={"group": "", "version": "v1", "resource": "secrets"},
                          object={"metadata": {"name": "db"}, "data": {"password": secret_value}}))
    rel_webhook.post(b'{"apiVersion": "' + secret_value.encode() + b'"', "application/json")
    time.sleep(0.5)
    log_text = rel_webhook.log_file.read_text(errors="replace")

    for needle in (secret_value, base64.b64encode(secret_value.encode()).decode()[:24]):
        assert needle not in log_text, f"secret material {needle[:8]}... found in the webhook log"
    assert "denied" in log_text or "deny" in log_text  # the denial itself was logged
