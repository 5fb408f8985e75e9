"""`make demo-helm`'s script, run against the session's real node: it must tell the whole lock story."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tools.localcluster import BIN_DIR, REPO_ROOT
from tools.node.cluster import LocalNode

# The first node test also starts the node (and builds its images if `make node-tools` did not).
pytestmark = [pytest.mark.integration, pytest.mark.node, pytest.mark.timeout(600)]


def test_demo_helm_tells_the_lock_story_with_the_webhook_as_pods(node: LocalNode) -> None:
    env = dict(os.environ, KUBECONFIG=str(node.cluster.kubeconfig), PATH=f"{BIN_DIR}:{os.environ['PATH']}")
    result = subprocess.run([sys.executable, "-m", "tools.demo_helm"], capture_output=True, text=True, env=env,
                            cwd=REPO_ROOT, timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Demo complete" in out and "DEMO FAILED" not in out
    # bob's refusal came from a webhook pod, not from the API server failing to call one.
    assert 'admission webhook "' in out and "denied the request" in out
    assert "failed calling webhook" not in out
    assert "No resources found" in out.rsplit("helm uninstall", 1)[1]
