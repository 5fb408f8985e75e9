"""Connecting to the API server: a kubeconfig (file, context) or the in-cluster config.

The one place that decides how lockcore, its CLI and the webhook reach a
cluster. The kubeconfig is ``kubeconfig`` if given, else ``$KUBECONFIG`` (a
``:``-separated list, merged), else ``~/.kube/config``; the pod's service
account is used when none of those was given and the process runs in a pod
(kubectl's order), or at once inside a pod for a server process that asks for
``in_cluster_first`` (the webhook: its own service account, not a stray file).
Every failure to configure a client is a :class:`~lockcore.errors.ClusterConfigError`
with one readable line; a server that does not answer is reported by the caller
as a :class:`~lockcore.errors.ClusterUnreachableError` (see :func:`unreachable`).

Example::

    >>> api = api_client_from(context="alice")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from lockcore.errors import ClusterConfigError, ClusterUnreachableError

# kubernetes.config is untyped; these typed handles keep mypy --strict meaningful here.
_new_client_from_config: Callable[..., client.ApiClient] = config.new_client_from_config
_load_incluster_config: Callable[..., None] = config.load_incluster_config
_list_kube_config_contexts: Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]] = (
    config.list_kube_config_contexts
)
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_DEFAULT_KUBECONFIG = "~/.kube/config"
_LOAD_ERRORS = (ConfigException, OSError, yaml.YAMLError)


@dataclass(frozen=True)
class _Kubeconfig:
    """Where the kubeconfig comes from: ``paths`` (``:``-separated) and who named them."""

    paths: str
    origin: str  # "given", "env" or "default"

    @classmethod
    def choose(cls, kubeconfig: str | None) -> _Kubeconfig:
        # $KUBECONFIG is read per call: the official client reads it once, at import.
        if kubeconfig:
            return cls(kubeconfig, "given")
        env = os.environ.get("KUBECONFIG", "")
        return cls(env, "env") if env else cls(_DEFAULT_KUBECONFIG, "default")

    def existing(self) -> list[str]:
        return [p for p in self.paths.split(os.pathsep) if p and Path(p).expanduser().is_file()]

    def missing(self, context: str | None) -> ClusterConfigError:
        detail = {
            "given": f'kubeconfig file "{self.paths}" does not exist',
            "env": f"none of the kubeconfig files in $KUBECONFIG exists ({self.paths})",
            "default": f"no kubeconfig at {_DEFAULT_KUBECONFIG} (give --kubeconfig or set $KUBECONFIG) "
                       "and not running in a pod",
        }[self.origin]
        return ClusterConfigError(detail, kubeconfig=self.paths, context=context or "")


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def api_client_from(kubeconfig: str | None = None, context: str | None = None, *,
                    in_cluster_first: bool = False) -> client.ApiClient:
    """An official-client ``ApiClient`` for the kubeconfig/context, or in-cluster.

    An explicit ``kubeconfig``, ``$KUBECONFIG`` or ``context`` never falls back
    to in-cluster: asking for a context that does not exist is an error, not a
    different cluster. Raises :class:`ClusterConfigError`.
    """
    source = _Kubeconfig.choose(kubeconfig)
    files = source.existing()
    if _in_cluster() and not context and source.origin == "default" and (in_cluster_first or not files):
        return _in_cluster_client()
    if not files:
        raise source.missing(context)
    try:
        if context and context not in _context_names(source.paths):
            raise ClusterConfigError(f'context "{context}" does not exist', kubeconfig=source.paths,
                                     context=context)
        return _new_client_from_config(config_file=source.paths, context=context)
    except _LOAD_ERRORS as exc:
        raise ClusterConfigError(f"invalid kubeconfig {source.paths}: {exc}", kubeconfig=source.paths,
                                 context=context or "") from exc


def _context_names(paths: str) -> set[str]:
    contexts, _active = _list_kube_config_contexts(config_file=paths)
    return {str(c.get("name")) for c in contexts}


def _in_cluster_client() -> client.ApiClient:
    configuration = client.Configuration()
    try:
        _load_incluster_config(client_configuration=configuration)
    except _LOAD_ERRORS as exc:
        raise ClusterConfigError(f"in-cluster config: {exc}") from exc
    return client.ApiClient(configuration)


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace kubectl would use: the context's, the pod's, else ``default``."""
    source = _Kubeconfig.choose(kubeconfig)
    try:
        contexts, active = _list_kube_config_contexts(config_file=source.paths)
    except _LOAD_ERRORS:
        if _in_cluster() and _SA_NAMESPACE.exists():
            return _SA_NAMESPACE.read_text().strip() or "default"
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def unreachable(exc: BaseException, server: str) -> ClusterUnreachableError | None:
    """``exc`` as a :class:`ClusterUnreachableError` if a transport failure caused it, else None.

    Follows ``__cause__`` (lockcore chains every API failure), so a
    ``LeaseOpError`` around a refused connection counts.

    >>> import urllib3
    >>> str(unreachable(urllib3.exceptions.NewConnectionError(None, "refused"), "https://h:1"))
    'cannot reach the API server at https://h:1: connection refused'
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.HTTPError):
            found = ClusterUnreachableError(server, seen)
            found.__cause__ = seen
            return found
        seen = seen.__cause__
    return None
