"""A second user's writes, from another process, fired the instant the parent says so.

``python -m tests.support.writer KUBECONFIG NAMESPACE`` reads one command a
line from stdin (``patch NAME``, ``create NAME`` or ``delete NAME``, on
ConfigMaps) and answers each with the HTTP status of that write on stdout.
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


def _write(core: client.CoreV1Api, namespace: str, verb: str, name: str) -> int:
    try:
        if verb == "patch":
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
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    for line in sys.stdin:
        verb, name = line.split()
        print(_write(core, namespace, verb, name), flush=True)


class Writer:
    """The parent's end: ``writer.write("patch", "cfg")`` returns the HTTP status."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        self._stdin, self._stdout = stdin, stdout

    def write(self, verb: str, name: str) -> int:
        self._stdin.write(f"{verb} {name}\n")
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
