"""The probe server: ``/healthz``, ``/readyz`` and ``/metrics`` on the plain health port.

Served by a thread of the gunicorn master (:func:`start_health_server`, from
gunicorn's ``when_ready`` hook), so probes keep answering while workers
restart. ``/readyz`` is 200 only while the API server answers
(:class:`Readiness`, checked at most once a second); ``/metrics`` aggregates
every worker's samples (:func:`webhook.metrics.render_latest`).

Example::

    ready = Readiness(lambda: ApiServer.connect(kubeconfig), timeout=2.0)
    server = start_health_server(ServingSettings(), ready)   # in the gunicorn master
    # GET http://<bind_address>:<health_port>/readyz -> 200 "API server /readyz: HTTP 200"
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, Response

from webhook.apiserver import ApiServer, ApiServerError
from webhook.metrics import render_latest
from webhook.settings import ServingSettings


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's signature
        pass  # probes every few seconds would drown the audit lines


class Readiness:
    """Whether the API server answers, checked at most once per ``interval`` seconds.

    ``connect`` builds the client on the first check (a failure to is an answer
    too: not ready); each check waits at most ``timeout`` seconds.
    """

    def __init__(self, connect: Callable[[], ApiServer], timeout: float, interval: float = 1.0) -> None:
        self._connect = connect
        self._timeout = timeout
        self._interval = interval
        self._checked = float("-inf")
        self._ready = False
        self._detail = "not checked yet"
        self._lock = threading.Lock()
        self._api: ApiServer | None = None

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            if time.monotonic() - self._checked < self._interval:
                return self._ready, self._detail
            try:
                if self._api is None:
                    self._api = self._connect()
                status = self._api.status("/readyz", timeout=self._timeout)
                self._ready, self._detail = status == 200, f"API server /readyz: HTTP {status}"
            except (ApiServerError, OSError, ValueError) as exc:
                self._ready, self._detail = False, f"API server unreachable: {exc}"
            self._checked = time.monotonic()
            return self._ready, self._detail


def health_app(ready: Callable[[], tuple[bool, str]]) -> Any:
    """The plain-HTTP WSGI app for probes and Prometheus."""
    app = Flask("leasegate-health")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", 200, mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        ok, detail = ready()
        return Response(detail + "\n", 200 if ok else 503, mimetype="text/plain")

    @app.get("/metrics")
    def metrics() -> Response:
        payload, content_type = render_latest()
        return Response(payload, 200, content_type=content_type)

    return app


def start_health_server(serving: ServingSettings, ready: Callable[[], tuple[bool, str]]) -> WSGIServer:
    """Serve the probe app on serving's ``bind_address`` and ``health_port`` from a daemon thread.

    ``ready`` answers ``/readyz`` (a :class:`Readiness`).
    """
    server = make_server(serving.bind_address, serving.health_port, health_app(ready),
                         server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
