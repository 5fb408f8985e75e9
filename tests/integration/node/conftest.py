"""The real single-node cluster (tools/node), started once per session for the ``node`` tests.

Its API server is a second one, separate from the session's ``cluster``: the
chart installed here registers cluster-wide webhooks with failurePolicy Fail,
which must never meet the other tests. Users are the same (admin, alice, bob
by client certificate). Teardown is part of the proof: the fixture fails if
anything of the node is left on the host.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.support.helm import helm
from tools.localcluster import BIN_DIR
from tools.node.cluster import LocalNode

NodeKubectl = Callable[..., subprocess.CompletedProcess[str]]
NodeHelm = Callable[..., subprocess.CompletedProcess[str]]
NodeApi = Callable[[str], client.ApiClient]


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNode]:
    if os.geteuid() != 0:
        pytest.fail("the node tests need root (network namespace, cgroups, containerd): "
                    "run as root, or skip them with -m 'not node' / LEASEGATE_SKIP_NODE=1 make test")
    local = LocalNode(workdir=tmp_path_factory.mktemp("node"))
    try:
        local.start()
        print(f"\nnode ready: {local.timings}")
        yield local
    finally:
        report = local.stop()
        print(f"\nnode stopped: {report}")
    left = local.leftovers()
    assert not left, f"the node left this behind: {left}"


@pytest.fixture(scope="session")
def node_api(node: LocalNode) -> Iterator[NodeApi]:
    """``node_api("alice")``: an official-client ApiClient acting as that user on the node's API server."""
    made: dict[str, client.ApiClient] = {}

    def factory(user: str = "admin") -> client.ApiClient:
        if user not in made:
            made[user] = config.new_client_from_config(config_file=str(node.cluster.kubeconfig), context=user)
        return made[user]

    yield factory
    for api in made.values():
        api.close()


@pytest.fixture(scope="session")
def node_kubectl(node: LocalNode) -> NodeKubectl:
    """``node_kubectl("get", "pods", user="bob", check=False)`` against the node's API server."""

    def run(*args: str, user: str = "admin", check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KUBECONFIG=str(node.cluster.kubeconfig_for(user)),
                   PATH=f"{BIN_DIR}:{os.environ['PATH']}")
        result = subprocess.run([str(BIN_DIR / "kubectl"), *args], capture_output=True, text=True, env=env,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def node_helm(node: LocalNode) -> NodeHelm:
    """The real helm against the node's API server (admin)."""

    def run(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return helm(*args, kubeconfig=node.cluster.kubeconfig, check=check, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def node_workdir(node: LocalNode) -> Path:
    return node.workdir
