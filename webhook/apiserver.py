"""The webhook's client of the API server: thin JSON over HTTP for the few calls on its hot path.

The official client's generated methods validate every argument and build
model objects; on an admission request that costs more than the lock decision
itself. :class:`ApiServer` reuses the official client's configuration (auth,
TLS, in-cluster or kubeconfig loading) and its urllib3 pool, but sends plain
requests and decodes plain JSON. Off the hot path (Events) the official
client is used as usual.

Example::

    api = ApiServer.connect(kubeconfig="")   # in a Pod: its service account
    status, body = api.get_json("/apis/coordination.k8s.io/v1/namespaces/shop/leases/x", timeout=2)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client

from lockcore.connect import api_client_from


@dataclass(frozen=True)
class ApiServerError(Exception):
    """An API call failed without an HTTP answer, or with an unexpected one."""

    path: str
    status: int | None
    detail: str

    def __str__(self) -> str:
        code = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{self.path}: {code}: {self.detail}"


def api_client(kubeconfig: str = "") -> client.ApiClient:
    """An official ApiClient: in-cluster when running in a Pod, else the kubeconfig.

    ``kubeconfig`` (or ``KUBECONFIG``) wins over in-cluster config so a
    webhook run outside the cluster (tests, development) is explicit. The
    choice is :func:`lockcore.connect.api_client_from`'s, the one lockcore and
    its CLI make, asked to prefer the pod's service account.
    """
    return api_client_from(kubeconfig or None, in_cluster_first=True)


class ApiServer:
    """GET JSON and stream watch lines using an ApiClient's connection pool and auth."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._cfg = api.configuration
        self._host = self._cfg.host.rstrip("/")
        self._pool: urllib3.PoolManager = api.rest_client.pool_manager

    @classmethod
    def connect(cls, kubeconfig: str = "") -> ApiServer:
        """A client configured as :func:`api_client` says (``kubeconfig``, else in-cluster)."""
        return cls(api_client(kubeconfig))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "leasegate-webhook"}
        for auth in self._cfg.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"])] = str(auth["value"])
        return headers

    def get_json(self, path: str, *, timeout: float, query: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET ``path``; returns (status, decoded body). Raises ApiServerError without an answer."""
        return self.request_json("GET", path, timeout=timeout, query=query)

    def request_json(self, method: str, path: str, *, timeout: float, body: Any = None,
                     query: dict[str, str] | None = None,
                     content_type: str = "application/json") -> tuple[int, Any]:
        """Send ``body`` as JSON; returns (status, decoded body). Raises ApiServerError without an answer."""
        url = self._host + path + (("?" + urlencode(query)) if query else "")
        headers = self._headers()
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        resp = self._send(method, path, url, headers=headers, body=payload, timeout=timeout)
        try:
            return resp.status, json.loads(resp.data) if resp.data else None
        except ValueError as exc:
            raise ApiServerError(path, resp.status, "response is not JSON") from exc

    def status(self, path: str, *, timeout: float) -> int:
        """GET ``path`` and return only the HTTP status (probes such as ``/readyz``)."""
        return int(self._send("GET", path, self._host + path, headers=self._headers(), timeout=timeout).status)

    def stream(self, path: str, *, query: dict[str, str], connect_timeout: float,
               read_timeout: float) -> urllib3.BaseHTTPResponse:
        """Open a streaming GET (a watch); the caller reads lines and releases it."""
        url = self._host + path + "?" + urlencode(query)
        resp = self._send("GET", path, url, headers=self._headers(), preload_content=False,
                          timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout))
        if resp.status != 200:
            body = resp.data[:300].decode(errors="replace")
            resp.release_conn()
            raise ApiServerError(path, resp.status, body)
        return resp

    def _send(self, method: str, path: str, url: str, **request: Any) -> urllib3.BaseHTTPResponse:
        """One request on the pool, never retried; no answer at all is a ApiServerError."""
        try:
            return self._pool.request(method, url, retries=False, **request)
        except urllib3.exceptions.HTTPError as exc:
            raise ApiServerError(path, None, str(exc) or exc.__class__.__name__) from exc

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]
