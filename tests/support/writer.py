"""A second user's writes, from another process, fired the instant the parent says so.

``python -m tests.support.writer KUBECONFIG NAMESPACE`` reads one command a
line from stdin (``patch NAME``, ``create NAME`` or ``delete NAME``, on
ConfigMaps; ``create-clusterrole NAME [LABEL]``, ``delete-clusterrole NAME``,
``create-namespace NAME [LABEL]``) and answers each with the HTTP status of that write on stdout.
The fence tests use it so that "right after acquire returns" means another
process and another connection, as it would for a real second user.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


def _write(api: client.ApiClient, namespace: str, verb: str, name: str, label: str = "") -> int:
    core = client.CoreV1Api(api)
    labels = dict([label.split("=", 1)]) if label else {}
    try:
        if verb == "create-clusterrole":
            client.RbacAuthorizationV1Api(api).create_cluster_role(
                {"metadata": {"name": name, "labels": labels}, "rules": []}, _preload_content=False)
        elif verb == "delete-clusterrole":
            client.RbacAuthorizationV1Api(api).delete_cluster_role(name, _preload_content=False)
        elif verb == "create-namespace":
            core.create_namespace({"metadata": {"name": name, "labels": labels}}, _preload_content=False)
        elif verb == "patch":
            core.patch_namespaced_config_map(name, namespace, {"data": {"at": str(time.time())}},
                                             _preload_content=False)
        elif verb == "create":
            core.create_namespaced_config_map(namespace, {"metadata": {"name": name}}, _preload_content=False)
        else:
            core.delete_namespaced_config_map(name, namespace, _preload_content=False)
    except ApiException as exc:
        return int(exc.status)
    return 200


def main(kubeconfig: str, namespace: str) -> None:
    api = config.new_client_from_config(config_file=kubeconfig)
    for line in sys.stdin:
        print(_write(api, namespace, *line.split()), flush=True)


class Writer:
    """The parent's end: ``writer.write("patch", "cfg")`` returns the HTTP status."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        self._stdin, self._stdout = stdin, stdout

    def write(self, verb: str, name: str, label: str = "") -> int:
        """``label`` (``key=value``) goes on a cluster-scoped object created."""
        self._stdin.write(f"{verb} {name} {label}\n")
        self._stdin.flush()
        return int(self._stdout.readline())


@contextmanager
def second_user(kubeconfig: Path, namespace: str) -> Iterator[Writer]:
    """A writer process acting with ``kubeconfig``, stopped on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.writer", str(kubeconfig), namespace],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        writer = Writer(proc.stdin, proc.stdout)
        # The first call opens the connection: do it before any timing matters.
        writer.write("patch", "warm-up")
        yield writer
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
