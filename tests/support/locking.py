"""Fixtures for lockcore against the real API server: clients that count HTTP calls (a plugin).

:class:`CountingApiClient` is the official ApiClient; it only records each
``call_api`` (one per HTTP request) before doing it, so counts are of real calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config

from lockcore.manager import LeaseManager
from lockcore.settings import LockSettings
from tests.support.cluster import ApiClientFactory
from tools.localcluster import LocalCluster


class CountingApiClient(client.ApiClient):  # type: ignore[misc]
    """An ApiClient that records (method, url) of every HTTP request it makes."""

    def __init__(self, configuration: client.Configuration) -> None:
        super().__init__(configuration)
        self.calls: list[tuple[str, str]] = []
        self._calls_lock = threading.Lock()

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        with self._calls_lock:
            self.calls.append((method, url))
        return super().call_api(method, url, *args, **kwargs)

    def reset(self) -> None:
        with self._calls_lock:
            self.calls.clear()

    def methods(self) -> list[str]:
        with self._calls_lock:
            return [method for method, _ in self.calls]


CountingFactory = Callable[..., CountingApiClient]
ManagerFactory = Callable[..., LeaseManager]


@pytest.fixture
def counting_client(cluster: LocalCluster) -> Iterator[CountingFactory]:
    """``counting_client("alice")``: a fresh counting client acting as that user."""
    made: list[CountingApiClient] = []

    def factory(user: str = "admin", pool: int = 8) -> CountingApiClient:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(cluster.kubeconfig_for(user)), client_configuration=configuration
        )
        configuration.connection_pool_maxsize = pool
        made.append(CountingApiClient(configuration))
        return made[-1]

    yield factory
    for api in made:
        api.close()


@pytest.fixture
def settings(namespace: str) -> LockSettings:
    """Short skew so expiry tests stay fast; cluster-scoped locks go to the test namespace."""
    return LockSettings(lock_namespace=namespace, clock_skew_seconds=0.2)


@pytest.fixture
def manager(
    counting_client: CountingFactory, settings: LockSettings
) -> Callable[..., LeaseManager]:
    """``manager(user="admin", **settings_overrides)``: a LeaseManager on a counting client."""

    def factory(user: str = "admin", **overrides: Any) -> LeaseManager:
        return LeaseManager(counting_client(user), settings.with_overrides(**overrides))

    return factory


def grant_leases(api_client: ApiClientFactory, namespace: str, user: str) -> None:
    """Give ``user`` full rights on Leases in ``namespace``, and the patch of the objects it locks
    (Deployments, ConfigMaps) that a fenced acquire needs for its marker (a Role and RoleBinding)."""
    rbac = client.RbacAuthorizationV1Api(api_client("admin"))
    name = f"leases-{user}"
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name=name),
            rules=[
                client.V1PolicyRule(
                    api_groups=["coordination.k8s.io"],
                    resources=["leases"],
                    verbs=["get", "list", "watch", "create", "update", "patch", "delete"],
                ),
                client.V1PolicyRule(api_groups=["", "apps"], resources=["configmaps", "deployments"],
                                    verbs=["get", "patch"]),
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[client.RbacV1Subject(kind="User", name=user, api_group="rbac.authorization.k8s.io")],
        ),
    )
