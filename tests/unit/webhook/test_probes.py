"""webhook/probes.py: the probe server from the serving section, readiness from an API client and a timeout."""

from __future__ import annotations

import requests

from tests.support.apiserver import AnsweringApiServer
from tools.localcluster import free_port
from webhook.apiserver import ApiServer, ApiServerError
from webhook.probes import Readiness, start_health_server
from webhook.settings import ServingSettings


def test_the_probe_server_listens_where_serving_says() -> None:
    serving = ServingSettings(bind_address="127.0.0.1", health_port=free_port())
    server = start_health_server(serving, lambda: (False, "API server unreachable: test"))
    try:
        base = f"http://127.0.0.1:{serving.health_port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert (ready.status_code, ready.text) == (503, "API server unreachable: test\n")
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_ready_while_the_api_server_answers_checked_at_most_once_per_interval() -> None:
    api = AnsweringApiServer({"/readyz": (200, None)})
    ready = Readiness(lambda: api, timeout=0.5, interval=3600)
    assert ready() == (True, "API server /readyz: HTTP 200") and ready()[0]
    assert [(c.path, c.timeout) for c in api.calls] == [("/readyz", 0.5)]
    api.answers["/readyz"] = (500, None)
    assert not Readiness(lambda: api, timeout=0.5)()[0]


def test_not_ready_when_the_api_server_is_unreachable_or_no_client_can_be_built() -> None:
    unreachable = AnsweringApiServer({"/readyz": ApiServerError("/readyz", None, "connection refused")})
    ok, detail = Readiness(lambda: unreachable, timeout=1)()
    assert not ok and "connection refused" in detail

    def no_config() -> ApiServer:
        raise OSError("no kubeconfig")

    ok, detail = Readiness(no_config, timeout=1)()
    assert not ok and "no kubeconfig" in detail
