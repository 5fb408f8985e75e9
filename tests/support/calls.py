"""What an official-client call ended with, for tests that count outcomes rather than catch exceptions."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException


def status_of(call: Any, *args: Any, **kwargs: Any) -> int:
    """The HTTP status ``call(*args, **kwargs)`` ended with: 200/201 as the server sent it, or the error's.

    >>> status_of(client.CoreV1Api(bob).create_namespaced_config_map, "shop", body)  # doctest: +SKIP
    403
    """
    try:
        return int(call(*args, _preload_content=False, **kwargs).status)
    except ApiException as exc:
        return int(exc.status)
