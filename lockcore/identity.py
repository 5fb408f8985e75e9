"""Who is calling: the Kubernetes username behind an API client.

The API server itself answers, through a ``SelfSubjectReview``
(``authentication.k8s.io/v1``), so the name recorded on a lock is the one the
webhook later sees in admission requests, whatever the credential type
(client certificate, token, exec plugin, in-cluster service account).

Example::

    >>> who_am_i(api_client)  # doctest: +SKIP
    'alice'
    >>> Principal(api_client).name()  # asked once, then remembered  # doctest: +SKIP
    'alice'
"""

from __future__ import annotations

import json
import threading
from typing import Any

from kubernetes import client

_REVIEW: dict[str, Any] = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def who_am_i(api_client: Any, *, timeout: float | None = None) -> str:
    """Return the username the API server authenticates ``api_client`` as.

    Raises the client's ``ApiException`` if the server refuses; callers wrap it.
    """
    api = client.AuthenticationV1Api(api_client)
    body = client.V1SelfSubjectReview.from_dict(_REVIEW)
    assert body is not None
    # With _preload_content=False the client returns the raw HTTP response.
    response: Any = api.create_self_subject_review(body=body, _preload_content=False,
                                                   _request_timeout=timeout)
    review = json.loads(response.data)
    return str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")


class Principal:
    """The username a lock client records on its Leases: given, or asked of the API server once.

    Safe to share between threads. ``name`` raises as :func:`who_am_i` does
    (the client's ``ApiException``, a transport error) until asking succeeds.
    """

    def __init__(self, api_client: Any, *, known: str | None = None, timeout: float | None = None) -> None:
        self._api = api_client
        self._name = known
        self._timeout = timeout
        self._lock = threading.Lock()

    def name(self) -> str:
        with self._lock:
            if self._name is None:
                self._name = who_am_i(self._api, timeout=self._timeout)
            return self._name
