"""A user's mistake or an unreachable cluster is one ``error:`` line and its exit code, never a traceback.

Run as processes (``lockcore`` and ``kubectl lock``) against the real API
server, or against a kubeconfig that points at a loopback port nobody listens on.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.cli import VENV_BIN, plugin_env
from tools.localcluster import BIN_DIR, LocalCluster

pytestmark = pytest.mark.integration
ENTRY_POINTS = {"lockcore": [str(VENV_BIN / "lockcore")], "kubectl-lock": [str(BIN_DIR / "kubectl"), "lock"]}
NO_KUBECONFIG = ("error: no kubeconfig at ~/.kube/config (give --kubeconfig or set $KUBECONFIG) "
                 "and not running in a pod")


@pytest.fixture(params=sorted(ENTRY_POINTS))
def entry(request: pytest.FixtureRequest) -> list[str]:
    return ENTRY_POINTS[request.param]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def run(entry: list[str], cluster: LocalCluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = plugin_env(cluster, **env)
    full_env.pop("KUBERNETES_SERVICE_HOST", None)  # these cases are about running outside a pod
    return subprocess.run([*entry, *args], capture_output=True, text=True, env=full_env, timeout=60)


def assert_one_error(result: subprocess.CompletedProcess[str], code: int, line: str) -> None:
    assert (result.returncode, result.stderr, result.stdout) == (code, line + "\n", ""), result.stderr


@pytest.mark.parametrize("args", [["status", "cm/x"], ["list"],
                                  ["acquire", "cm/x", "--txn", "t1", "--ttl", "1m"]])
def test_no_kubeconfig_at_all(entry: list[str], cluster: LocalCluster, tmp_path: Path, args: list[str]) -> None:
    result = run(entry, cluster, *args, KUBECONFIG="", HOME=str(tmp_path))
    assert_one_error(result, 5, NO_KUBECONFIG)


def test_kubeconfig_env_names_a_missing_file(entry: list[str], cluster: LocalCluster, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run(entry, cluster, "status", "cm/x", KUBECONFIG=str(missing))
    assert_one_error(result, 5, f"error: none of the kubeconfig files in $KUBECONFIG exists ({missing})")


def test_kubeconfig_flag_names_a_missing_file(entry: list[str], cluster: LocalCluster, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run(entry, cluster, "list", "--kubeconfig", str(missing))
    assert_one_error(result, 5, f'error: kubeconfig file "{missing}" does not exist')


def test_context_that_does_not_exist(entry: list[str], cluster: LocalCluster) -> None:
    result = run(entry, cluster, "status", "cm/x", "--context", "nope")
    assert_one_error(result, 5, 'error: context "nope" does not exist')
    # The contexts that do exist still work through the same flag.
    assert run(entry, cluster, "list", "--context", "admin", "-n", "default").returncode == 0


@pytest.mark.parametrize("args", [["status", "cm/x", "-n", "default"], ["list"],
                                  ["release", "cm/x", "-n", "default", "--txn", "t1"]])
def test_unreachable_server(entry: list[str], cluster: LocalCluster, tmp_path: Path, closed_port: int,
                            args: list[str]) -> None:
    kubeconfig = yaml.safe_load(cluster.kubeconfig_for("admin").read_text())
    for item in kubeconfig["clusters"]:
        item["cluster"]["server"] = f"https://127.0.0.1:{closed_port}"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    result = run(entry, cluster, *args, KUBECONFIG=str(path))
    assert_one_error(result, 5, f"error: cannot reach the API server at https://127.0.0.1:{closed_port}: "
                                "connection refused")


def test_lock_in_a_namespace_that_does_not_exist(entry: list[str], cluster: LocalCluster) -> None:
    nope = f"nope-{uuid.uuid4().hex[:6]}"
    result = run(entry, cluster, "acquire", "cm/x", "-n", nope, "--txn", "t1", "--ttl", "1m")
    assert_one_error(result, 1, f'error: namespace "{nope}" not found')


def test_cluster_scoped_lock_without_its_lock_namespace(entry: list[str], cluster: LocalCluster) -> None:
    nope = f"nope-{uuid.uuid4().hex[:6]}"
    result = run(entry, cluster, "acquire", "ns/default", "--lock-namespace", nope, "--txn", "t1", "--ttl", "1m")
    assert_one_error(result, 1, f'error: namespace "{nope}" not found')


def test_usage_error_is_the_message_and_a_pointer_to_help(entry: list[str], cluster: LocalCluster,
                                                          namespace: str) -> None:
    prog = "kubectl lock" if entry[-1] == "lock" else "lockcore"
    missing_ttl = run(entry, cluster, "acquire", "cm/x", "-n", namespace, "--txn", "t1")
    assert (missing_ttl.returncode, missing_ttl.stdout) == (2, "")
    assert missing_ttl.stderr == ("error: the following arguments are required: --ttl\n"
                                  f"See '{prog} acquire --help' for usage.\n")
    no_command = run(entry, cluster)
    assert no_command.returncode == 2
    assert no_command.stderr.endswith(f"\nSee '{prog} --help' for usage.\n") and "usage:" not in no_command.stderr
    # Errors found after parsing (here: by discovery) are one line, as kubectl prints them.
    unknown = run(entry, cluster, "status", "nosuchtype/x", "-n", namespace)
    assert_one_error(unknown, 2, 'error: the server doesn\'t have a resource type "nosuchtype"')
