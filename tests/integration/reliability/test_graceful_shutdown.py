"""Graceful shutdown: admission requests in flight at SIGTERM get their complete, correct answer.

Nothing is faked. The webhook runs in consistent lookup mode against the real
kube-apiserver, reached through :class:`~tests.support.delayproxy.DelayingProxy`
(a TCP relay adding one-way latency; TLS stays end to end), so each admission
request spends a measurable time waiting on its Lease read. With one worker of
four threads and six concurrent requests, SIGTERM reaches the gunicorn master
while four requests sit in threads waiting on the API server and two complete
requests wait for a thread. Every one of them must be answered (uid echoed, the
locked object denied with 403, the free one allowed), a new connection during
the drain must be refused at once, and the master must exit 0 before
``graceful_timeout_seconds``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from lockcore.naming import ResourceKey
from tests.support.admission import assert_well_formed, body
from tests.support.cluster import ApiClientFactory
from tests.support.delayproxy import DelayingProxy
from tests.support.figures import Figures
from tools.localcluster import LocalCluster
from tools.localwebhook import RunningWebhook, lock, start_webhook, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.stress]

THREADS = 4  # one worker: every request beyond four waits for a thread
TARGETS = [("locked", False), ("free", True)] * 3  # six requests, one connection each
DELAY = 1.0  # one-way latency added to every chunk the webhook sends the API server
GRACE = 20  # graceful_timeout_seconds: far above the expected drain, so a kill would show


@dataclass
class Outcome:
    name: str
    expect_allowed: bool
    uid: str
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    response: dict[str, object] | None = None
    connection_header: str = ""
    error: str = ""


def proxied_kubeconfig(cluster: LocalCluster, proxy: DelayingProxy, path: Path) -> Path:
    """A copy of the admin kubeconfig whose server is the proxy (the API server's cert has SAN 127.0.0.1)."""
    config = json.loads(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path.write_text(json.dumps(config))
    return path


def post(hook: RunningWebhook, namespace: str, outcome: Outcome,
         session: requests.Session | None = None) -> None:
    """Post one AdmissionReview (on ``session``'s kept-alive connection if given) and record the outcome."""
    payload = body(uid=outcome.uid, namespace=namespace, name=outcome.name, operation="UPDATE",
                   object={"metadata": {"name": outcome.name}}, userInfo={"username": "bob"})
    outcome.sent = time.monotonic()
    try:
        resp = (session or requests).post(hook.url, data=payload, headers={"Content-Type": "application/json"},
                             verify=str(hook.ca_file), timeout=GRACE + 10)
        outcome.answered = time.monotonic()
        outcome.status = resp.status_code
        outcome.connection_header = resp.headers.get("Connection", "")
        outcome.response = assert_well_formed(json.loads(resp.content), outcome.uid)
    except (requests.RequestException, ValueError, AssertionError, KeyError) as exc:
        outcome.answered = time.monotonic()
        outcome.error = f"{type(exc).__name__}: {exc}"[:300]


def connect_refused(port: int) -> bool:
    """Whether a new TCP connection to the admission port is refused right away."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_in_flight_requests_finish_on_sigterm(cluster: LocalCluster, api_client: ApiClientFactory,
                                              namespace: str, tmp_path: Path, figures: Figures) -> None:
    lock(api_client("admin"), ResourceKey("", "ConfigMap", namespace, "locked"), "t1", duration_seconds=600)
    with DelayingProxy(("127.0.0.1", cluster.apiserver_port), delay=0.0) as proxy:
        kubeconfig = proxied_kubeconfig(cluster, proxy, tmp_path / "kubeconfig-proxied")
        hook = start_webhook(tmp_path, kubeconfig, "graceful", lease_lookup="consistent", mode="deny",
                             workers=1, threads=THREADS, graceful_timeout_seconds=GRACE,
                             lookup_timeout_seconds=5)
        try:
            # Without latency the answers are right. One client keeps its connection alive,
            # as the API server does.
            kept_alive = requests.Session()
            for name, expect in TARGETS[:2]:
                warm = Outcome(name, expect, f"warm-{name}")
                post(hook, namespace, warm, kept_alive)
                assert not warm.error and warm.response and warm.response["allowed"] is expect, warm

            proxy.delay = DELAY
            outcomes = [Outcome(name, expect, f"inflight-{i}-{uuid.uuid4().hex[:6]}")
                        for i, (name, expect) in enumerate(TARGETS)]
            clients = [threading.Thread(target=post, args=(hook, namespace, o), daemon=True) for o in outcomes]
            for t in clients:
                t.start()
            # Every thread of the worker is waiting on the API server; the rest are queued.
            wait_for(lambda: proxy.held() >= THREADS, timeout=10, interval=0.02)
            held_at_term = proxy.held()
            term_at = time.monotonic()
            os.kill(hook.process.pid, signal.SIGTERM)

            # During the drain a new connection is refused, not left hanging in a backlog.
            try:
                refused = wait_for(lambda: connect_refused(hook.port), timeout=1.5, interval=0.05)
            except TimeoutError:
                refused = False
            refused_after = time.monotonic() - term_at
            still_in_flight = sum(1 for o in outcomes if not o.answered)
            # A request arriving on an idle kept-alive connection just after SIGTERM is still
            # answered (gunicorn keeps such connections a moment), with "Connection: close".
            reused = Outcome("locked", False, f"kept-alive-{uuid.uuid4().hex[:6]}")
            post(hook, namespace, reused, kept_alive)
            kept_alive.close()

            for t in clients:
                t.join(GRACE + 15)
            code = hook.process.wait(timeout=GRACE + 10)
            exited_after = time.monotonic() - term_at
        finally:
            hook.stop()

    latencies = sorted(o.answered - o.sent for o in outcomes)
    errors = [o for o in outcomes if o.error or o.status != 200 or o.response is None]
    figures(f"SIGTERM with {len(outcomes)} admission requests in flight on 1 worker x {THREADS} threads "
            f"({held_at_term} API calls held on a {DELAY:.1f} s link to the API server): "
            f"{len(outcomes) - len(errors)} answered correctly after SIGTERM, {len(errors)} lost; latency "
            f"{latencies[0]:.1f}-{latencies[-1]:.1f} s; a new connection "
            f"{'refused' if refused else 'NOT refused (left in the backlog)'} {refused_after:.2f} s after "
            f"SIGTERM ({still_in_flight} still in flight); a request on a kept-alive connection right after "
            f"SIGTERM answered ({reused.status}, Connection: {reused.connection_header}); master exited {code} after {exited_after:.1f} s "
            f"(graceful_timeout {GRACE} s)")

    assert not errors, [(o.name, o.status, o.error) for o in errors]
    for o in outcomes:
        assert o.sent < term_at < o.answered, f"{o.uid} was not in flight at SIGTERM"
        assert o.response is not None and o.response["allowed"] is o.expect_allowed, o
        if not o.expect_allowed:
            status = o.response["status"]
            assert isinstance(status, dict) and status["code"] == 403, status
    assert refused and still_in_flight > 0
    assert not reused.error and reused.response is not None and reused.response["allowed"] is False, reused
    assert reused.connection_header.lower() == "close", reused
    assert code == 0
    assert exited_after < GRACE
    problems = [r for r in hook.log_records() if r.get("level") in ("ERROR", "CRITICAL")]
    assert not problems, problems[:3]
