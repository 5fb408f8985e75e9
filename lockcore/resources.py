"""Turning kubectl's ``TYPE/NAME`` into a :class:`~lockcore.naming.ResourceKey`.

Types are resolved through the API server's discovery documents, as kubectl
resolves them, so every spelling kubectl accepts works and CRDs need no table:
``deployment/web``, ``deployments/web``, ``deploy/web`` (short name),
``deployments.apps/web``, ``deployment.v1.apps/web``, ``cm/settings``. Without
a group, the core group wins, then the groups in the server's priority order.

Example::

    >>> resolver = Discovery(api_client)  # doctest: +SKIP
    >>> resolver.key("deploy/web", namespace="shop")  # doctest: +SKIP
    ResourceKey(group='apps', kind='Deployment', namespace='shop', name='web')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from lockcore.naming import InvalidKeyError, ResourceKey

_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")


class UnknownResourceError(InvalidKeyError):
    """The server has no resource type by that name."""


@dataclass(frozen=True)
class ResourceType:
    """One resource type as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool


def split_target(target: str) -> tuple[str, str]:
    """``"deployment/web"`` -> ``("deployment", "web")``."""
    kind, sep, name = target.partition("/")
    if not sep or not kind or not name:
        raise InvalidKeyError(f"expected TYPE/NAME (e.g. deployment/web), got {target!r}")
    return kind, name


class Discovery:
    """Resolves resource types against one API server; caches what it fetched."""

    def __init__(self, api_client: Any, *, timeout: float | None = 10.0) -> None:
        self._api = api_client
        self._timeout = timeout  # a server that drops packets must not hang the caller
        self._lists: dict[str, list[dict[str, Any]]] = {}
        self._groups: list[dict[str, Any]] | None = None

    def key(self, target: str, namespace: str) -> ResourceKey:
        """The lock key for ``TYPE/NAME`` (``namespace`` is dropped if cluster-scoped)."""
        type_text, name = split_target(target)
        rtype = self.resolve(type_text)
        return ResourceKey(
            group=rtype.group,
            kind=rtype.kind,
            namespace=namespace if rtype.namespaced else "",
            name=name,
        )

    def resolve(self, type_text: str) -> ResourceType:
        resource, _, rest = type_text.lower().partition(".")
        version = ""
        first, _, after = rest.partition(".")
        if _VERSION.match(first):
            version, rest = first, after
        for group_version in self._group_versions(rest, version):
            for entry in self._resources(group_version):
                names = {entry.get("name"), entry.get("singularName"), str(entry.get("kind", "")).lower()}
                names.update(entry.get("shortNames") or [])
                if resource in names and "/" not in str(entry.get("name")):
                    group, _, ver = group_version.rpartition("/")
                    return ResourceType(
                        group=group, version=ver, kind=str(entry["kind"]),
                        plural=str(entry["name"]), namespaced=bool(entry.get("namespaced")),
                    )
        raise UnknownResourceError(f'the server doesn\'t have a resource type "{type_text}"')

    def _group_versions(self, group: str, version: str) -> list[str]:
        """Candidate group/versions, core first, then the server's priority order."""
        if group == "" and version:
            return [version]
        candidates = [] if group else ["v1"]
        if self._groups is None:
            self._groups = list(self._get("/apis").get("groups") or [])
        for entry in self._groups:
            if group and entry.get("name") != group:
                continue
            if version:
                candidates.append(f"{entry['name']}/{version}")
            else:
                candidates.append(str((entry.get("preferredVersion") or {}).get("groupVersion")))
        return candidates

    def _resources(self, group_version: str) -> list[dict[str, Any]]:
        if group_version not in self._lists:
            path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            try:
                self._lists[group_version] = list(self._get(path).get("resources") or [])
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._lists[group_version] = []
        return self._lists[group_version]

    def for_kind(self, group: str, kind: str) -> ResourceType:
        """The resource type of ``kind`` in ``group`` (what a ResourceKey names).

        >>> Discovery(api_client).for_kind("apps", "Deployment").plural  # doctest: +SKIP
        'deployments'
        """
        return self.resolve(f"{kind}.{group}" if group else f"{kind}.v1")

    def _get(self, path: str) -> dict[str, Any]:
        status, body = request_json(self._api, "GET", path, timeout=self._timeout)
        if not 200 <= status <= 299 or not isinstance(body, dict):
            raise ApiException(status=status, reason=str((body or {}).get("message", "")) if isinstance(
                body, dict) else "")
        return body


def request_json(api: Any, method: str, path: str, *, body: Any = None, query: dict[str, str] | None = None,
                 content_type: str = "application/json", timeout: float | None = None) -> tuple[int, Any]:
    """One raw API call through an official ``ApiClient`` (its auth, TLS and pool): (status, JSON body).

    For the calls the generated client has no typed method for (discovery,
    patches of any kind of object). Raises what the client raises when no
    answer arrives (urllib3 errors, ``OSError``); an error status is returned.

    >>> request_json(api, "GET", "/api/v1/namespaces/shop/configmaps/web")  # doctest: +SKIP
    (200, {'kind': 'ConfigMap', ...})
    """
    status, data, _ = request_json_warned(api, method, path, body=body, query=query, content_type=content_type,
                                          timeout=timeout)
    return status, data


def request_json_warned(api: Any, method: str, path: str, *, body: Any = None, query: dict[str, str] | None = None,
                        content_type: str = "application/json",
                        timeout: float | None = None) -> tuple[int, Any, list[str]]:
    """:func:`request_json`, with the warnings the API server sent (``Warning`` headers, RFC 7234 form)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    request = api.param_serialize(method=method, resource_path=path, header_params=headers, body=body,
                                  query_params=list((query or {}).items()), auth_settings=["BearerToken"])
    response = api.call_api(*request, _request_timeout=timeout)
    response.read()
    warnings = [str(w) for w in response.headers.getlist("Warning")]
    try:
        return int(response.status), json.loads(response.data) if response.data else None, warnings
    except ValueError:
        return int(response.status), None, warnings
