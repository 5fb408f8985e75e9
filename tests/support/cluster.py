"""The session's real kube-apiserver, isolation by namespace (a plugin: tests/conftest.py registers it).

Integration tests ask for ``cluster`` (started once per session by
tools.localcluster, the same binaries a cluster runs) and a fresh ``namespace``;
they talk to the API server as ``admin``, ``alice`` or ``bob`` through
``api_client(user)`` or ``kubectl(..., user=...)``. Nothing here fakes the
Kubernetes API.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client, config

from tools.localcluster import BIN_DIR, LocalCluster, running

KubectlRunner = Callable[..., subprocess.CompletedProcess[str]]
ApiClientFactory = Callable[[str], client.ApiClient]
_SERVER_VERSION = pytest.StashKey[str]()



@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalCluster]:
    with running(tmp_path_factory.mktemp("cluster")) as local:
        version = local.version()
        pytestconfig.stash[_SERVER_VERSION] = f"{version['gitVersion']} ({version['platform']}) at {local.server}"
        yield local


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    # The proof, in every test log, that integration tests ran against a real API server.
    if _SERVER_VERSION in config.stash:
        terminalreporter.write_line(f"integration tests ran against kube-apiserver {config.stash[_SERVER_VERSION]}")


@contextmanager
def api_clients(cluster: LocalCluster) -> Iterator[ApiClientFactory]:
    """``factory("alice")``: an official-client ApiClient acting as that user (one per user), closed at exit."""
    made: dict[str, client.ApiClient] = {}

    def factory(user: str = "admin") -> client.ApiClient:
        if user not in made:
            made[user] = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=user)
        return made[user]

    try:
        yield factory
    finally:
        for api in made.values():
            api.close()


def kubectl_runner(cluster: LocalCluster) -> KubectlRunner:
    """``run("get", "cm", user="bob", check=False)``: the real kubectl against ``cluster``."""

    def run(*args: str, user: str = "admin", check: bool = True, input: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig_for(user)))
        full_env["PATH"] = f"{BIN_DIR}:{full_env['PATH']}"
        full_env.update(env or {})
        result = subprocess.run([str(BIN_DIR / "kubectl"), *args], capture_output=True, text=True,
                                input=input, env=full_env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def api_client(cluster: LocalCluster) -> Iterator[ApiClientFactory]:
    """``api_client("alice")``: an official-client ApiClient acting as that user."""
    with api_clients(cluster) as factory:
        yield factory


@pytest.fixture(scope="session")
def kubectl(cluster: LocalCluster) -> KubectlRunner:
    """``kubectl("get", "cm", user="bob", check=False)``: run the real kubectl."""
    return kubectl_runner(cluster)


@pytest.fixture
def namespace(api_client: ApiClientFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test: isolation without a new control plane."""
    base = request.node.name.lower().replace("_", "-")
    name = f"t-{''.join(c for c in base if c.isalnum() or c == '-')[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client("admin"))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    # Without kube-controller-manager the namespace stays Terminating; that is harmless.
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
