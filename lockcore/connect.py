"""Connecting to the API server: a kubeconfig (file, context) or the in-cluster config.

Used by :class:`lockcore.manager.LeaseManager` when no client is given and by
the CLI, so both pick the cluster the same way kubectl does: ``--kubeconfig``,
else ``$KUBECONFIG``, else ``~/.kube/config``; when none exists and the process
runs in a pod, the pod's service account.

Example::

    >>> api = api_client_from(context="alice")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

# kubernetes.config is untyped; these typed handles keep mypy --strict meaningful here.
_new_client_from_config: Callable[..., Any] = config.new_client_from_config
_load_incluster_config: Callable[..., None] = config.load_incluster_config
_list_kube_config_contexts: Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]] = (
    config.list_kube_config_contexts
)
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def api_client_from(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An official-client ``ApiClient`` for the kubeconfig/context, or in-cluster.

    An explicit ``kubeconfig`` or ``context`` never falls back to in-cluster:
    asking for a context that does not exist is an error, not a different cluster.
    """
    try:
        return _new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, FileNotFoundError):
        if kubeconfig or context or not _in_cluster():
            raise
    configuration = client.Configuration()
    _load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace kubectl would use: the context's, the pod's, else ``default``."""
    try:
        contexts, active = _list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, FileNotFoundError):
        if _in_cluster() and _SA_NAMESPACE.exists():
            return _SA_NAMESPACE.read_text().strip() or "default"
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")
