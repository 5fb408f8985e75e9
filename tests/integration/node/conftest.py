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
from kubernetes import client

from tests.support.cluster import api_clients, kubectl_runner
from tests.support.helm import helm
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
    with api_clients(node.cluster) as factory:
        yield factory


@pytest.fixture(scope="session")
def node_kubectl(node: LocalNode) -> NodeKubectl:
    """``node_kubectl("get", "pods", user="bob", check=False)`` against the node's API server."""
    return kubectl_runner(node.cluster)


@pytest.fixture(scope="session")
def node_helm(node: LocalNode) -> NodeHelm:
    """The real helm against the node's API server (admin)."""

    def run(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return helm(*args, kubeconfig=node.cluster.kubeconfig, check=check, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def node_workdir(node: LocalNode) -> Path:
    return node.workdir
