"""Bounded admission load against a running webhook, every answer checked.

:func:`run_load` posts AdmissionReviews from a few threads for a fixed time
(loopback only, bounded in time and count). Each answer is classified:
``ok`` (well-formed, the expected verdict), ``wrong`` (well-formed but the
wrong verdict, or malformed: never acceptable), or ``failed`` (no HTTP
answer: connection reset or TLS handshake refused, which the API server
treats per the webhook's failurePolicy and which fault tests bound).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
import urllib3

from tests.support.admission import assert_well_formed, body

# (name, expected allowed) pairs the load cycles through.
Target = tuple[str, bool]


@dataclass
class LoadResult:
    ok: int = 0
    wrong: list[str] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def failures_between(self, start: float, end: float) -> int:
        return sum(1 for at, _ in self.failed if start <= at <= end)


def run_load(url: str, verify: str | bool, namespace: str, targets: list[Target], *,
             seconds: float, threads: int = 4, fresh_connections: bool = False,
             during: Callable[[], None] | None = None) -> LoadResult:
    """Post for ``seconds`` from ``threads`` threads; run ``during()`` meanwhile in this thread.

    ``verify`` is the CA file, or False to check only that the handshake completes.
    ``fresh_connections`` makes every request a new TLS handshake (to observe
    certificate rotation); otherwise each thread keeps one keep-alive session,
    as the API server does.
    """
    result = LoadResult()
    if verify is False:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        session = requests.Session()
        n = 0
        while time.monotonic() < stop_at:
            name, expect = targets[(index + n) % len(targets)]
            n += 1
            uid = f"load-{index}-{n}-{uuid.uuid4().hex[:6]}"
            payload = body(uid=uid, namespace=namespace, name=name, operation="UPDATE",
                           object={"metadata": {"name": name}}, userInfo={"username": "bob"})
            started = time.monotonic()
            try:
                poster = requests if fresh_connections else session
                resp = poster.post(url, data=payload, headers={"Content-Type": "application/json"},
                                   verify=verify, timeout=10)
                answer = json.loads(resp.content)
                response = assert_well_formed(answer, uid)
                verdict_ok = resp.status_code == 200 and response["allowed"] is expect
            # A connection cut mid-response (a killed worker) is a transport failure
            # like a reset, not a wrong answer; it must not end this load thread.
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    ssl.SSLError) as exc:
                with lock:
                    result.failed.append((time.monotonic(), f"{type(exc).__name__}: {exc}"[:200]))
                session = requests.Session()
                continue
            except (AssertionError, ValueError, KeyError) as exc:
                with lock:
                    result.wrong.append(f"{name}: {exc!r}"[:300])
                continue
            with lock:
                result.latencies.append(time.monotonic() - started)
                if verdict_ok:
                    result.ok += 1
                else:
                    result.wrong.append(f"{name}: expected allowed={expect}, got {response}"[:300])
        session.close()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    if during is not None:
        during()
    for t in pool:
        t.join(seconds + 30)
    return result
