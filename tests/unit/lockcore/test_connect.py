"""How lockcore.connect picks a cluster: kubeconfig files and the in-cluster config, no API calls.

The in-cluster loader needs a pod's service-account files, which this machine
does not have, so choosing it shows as the ClusterConfigError it raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lockcore.connect import api_client_from, default_namespace
from lockcore.errors import ClusterConfigError

IN_CLUSTER = "in-cluster"


def write_kubeconfig(path: Path, server: str, namespace: str = "") -> None:
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "ctx", "context": context}],
    }))


def chosen(**kwargs: Any) -> str:
    """The server of the client api_client_from builds, "in-cluster", or the error's text."""
    try:
        return str(api_client_from(**kwargs).configuration.host)
    except ClusterConfigError as exc:
        return IN_CLUSTER if str(exc).startswith("in-cluster config") else f"error: {exc}"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with ~/.kube/config (server https://home), a given.yaml (https://given), env.yaml (https://env)."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for name, server in (("home/.kube/config", "https://home"), ("given.yaml", "https://given"),
                         ("env.yaml", "https://env")):
        write_kubeconfig(tmp_path / name, server)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


# (in a pod, $KUBECONFIG, ~/.kube/config exists, kwargs, expected)
CASES = [
    (False, "", True, {}, "https://home"),
    (False, "", True, {"in_cluster_first": True}, "https://home"),
    (True, "", True, {}, "https://home"),                                 # kubectl: the file first
    (True, "", True, {"in_cluster_first": True}, IN_CLUSTER),             # webhook: its service account
    (True, "", False, {}, IN_CLUSTER),
    (True, "env.yaml", False, {"in_cluster_first": True}, "https://env"),  # $KUBECONFIG wins
    (True, "", True, {"kubeconfig": "given.yaml", "in_cluster_first": True}, "https://given"),
    (True, "", False, {"kubeconfig": "missing.yaml"}, 'error: kubeconfig file "missing.yaml" does not exist'),
    (True, "missing.yaml", False, {},
     "error: none of the kubeconfig files in $KUBECONFIG exists (missing.yaml)"),
    (True, "", False, {"context": "ctx"},
     "error: no kubeconfig at ~/.kube/config (give --kubeconfig or set $KUBECONFIG) and not running in a pod"),
    (False, "", False, {},
     "error: no kubeconfig at ~/.kube/config (give --kubeconfig or set $KUBECONFIG) and not running in a pod"),
    (False, "", True, {"context": "nope"}, 'error: context "nope" does not exist'),
    (False, "", True, {"context": "ctx"}, "https://home"),
]


@pytest.mark.parametrize(("in_pod", "env", "home_file", "kwargs", "expected"), CASES)
def test_which_cluster(files: Path, monkeypatch: pytest.MonkeyPatch, in_pod: bool, env: str, home_file: bool,
                       kwargs: dict[str, object], expected: str) -> None:
    monkeypatch.chdir(files)
    if in_pod:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    if env:
        monkeypatch.setenv("KUBECONFIG", env)
    if not home_file:
        (files / "home/.kube/config").unlink()
    assert chosen(**kwargs) == expected


def test_kubeconfig_list_in_env_is_merged(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{files / 'missing.yaml'}:{files / 'env.yaml'}")
    assert chosen() == "https://env"


def test_invalid_kubeconfig_is_one_error(files: Path) -> None:
    broken = files / "broken.yaml"
    broken.write_text("clusters: [")
    assert chosen(kubeconfig=str(broken)).startswith(f"error: invalid kubeconfig {broken}: ")


def test_default_namespace_follows_the_same_file(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_kubeconfig(files / "ns.yaml", "https://ns", namespace="shop")
    monkeypatch.setenv("KUBECONFIG", str(files / "ns.yaml"))
    assert default_namespace() == "shop"
    assert default_namespace(str(files / "given.yaml")) == "default"
