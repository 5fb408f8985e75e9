"""Run the installed ``lockcore`` CLI (and see ``kubectl-lock``) as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.localcluster import BIN_DIR, REPO_ROOT, LocalCluster

VENV_BIN = Path(sys.executable).parent


def plugin_env(cluster: LocalCluster, user: str = "admin", **extra: str) -> dict[str, str]:
    """kubectl's view of PATH once the package is installed: the venv's bin holds kubectl-lock."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_for(user)), **extra}
    env["PATH"] = f"{VENV_BIN}:{BIN_DIR}:{env['PATH']}"
    # The venv's console scripts import lockcore from wherever the package was installed
    # from: this checkout goes first, so the binary under test runs the code under test.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def lockcore(cluster: LocalCluster, *args: str, user: str = "admin") -> subprocess.CompletedProcess[str]:
    """``lockcore ARGS`` as ``user``; the caller checks the exit code."""
    return subprocess.run([str(VENV_BIN / "lockcore"), *args], capture_output=True, text=True,
                          env=plugin_env(cluster, user), timeout=60)
