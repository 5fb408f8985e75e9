"""webhook/apiserver.py: a client built from a kubeconfig alone; JSON in and out; no answer is an ApiServerError."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.localcluster import free_port
from webhook.apiserver import ApiServer, ApiServerError


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body, status = (b"not json", 200) if self.path == "/garbage" else (
            json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode(), 200)
        if self.path.startswith("/missing"):
            body, status = b'{"code": 404}', 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
    return str(path)


def test_a_client_connects_with_the_kubeconfig_it_is_given(tmp_path: Path, server: str) -> None:
    api = ApiServer.connect(kubeconfig(tmp_path, server))
    try:
        status, body = api.get_json("/apis/x", timeout=5, query={"limit": "1"})
        assert (status, body) == (200, {"path": "/apis/x?limit=1", "auth": "Bearer s3cret"})
        assert api.get_json("/missing", timeout=5) == (404, {"code": 404})
        assert api.status("/readyz", timeout=5) == 200
        with pytest.raises(ApiServerError, match="response is not JSON"):
            api.get_json("/garbage", timeout=5)
        with pytest.raises(ApiServerError) as refused:
            api.stream("/missing", query={"watch": "1"}, connect_timeout=5, read_timeout=5)
        assert refused.value.status == 404
    finally:
        api.close()


def test_no_answer_at_all_is_an_api_server_error_without_status(tmp_path: Path) -> None:
    api = ApiServer.connect(kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(ApiServerError) as error:
            api.get_json("/readyz", timeout=2)
        assert error.value.status is None and str(error.value).startswith("/readyz: no response: ")
    finally:
        api.close()
