"""`make demo` keeps working: the demo script runs green against the real control plane."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tools.localcluster import REPO_ROOT, LocalCluster


def test_demo_runs_end_to_end(cluster: LocalCluster) -> None:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    result = subprocess.run([sys.executable, "-m", "tools.demo"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # bob's write was refused with the webhook's actionable message, alice's passed.
    assert 'admission webhook "locks.leasegate.io" denied the request' in result.stdout
    assert "is locked by transaction 't42'" in result.stdout
    assert "Demo complete" in result.stdout
    # The blocked writes came back through `kubectl lock audit` from the webhook's ledger.
    audit = result.stdout.split("kubectl lock audit", 1)[1].split("===", 1)[0]
    assert "bob" in audit and "t42" in audit and "configmap/settings -n shop" in audit
    # Both of bob's refusals, one ledger result each (they were refused for different reasons).
    row = r"\bbob\s+UPDATE\s+configmap/settings -n shop\s+t42\s+{declared}\s+deny\s+{reason}\s+1\s*$"
    for declared, reason in (("-", "not-in-transaction"), ("t42", "carried-over-not-principal")):
        assert re.search(row.format(declared=declared, reason=reason), audit, re.M), audit
    assert re.search(r"^\s*leasegate-blocked-writes\s+0\s+2\s+0\s+0\s+0\s", audit, re.M), audit
    # The lock marked the object: `kubectl get cm -l leasegate.io/locked` lists it while locked, not after.
    marked = result.stdout.split("-l leasegate.io/locked -L leasegate.io/locked", 1)[1].split("===", 1)[0]
    assert re.search(r"^\s*settings\s+\d+\s+\S+\s+t42\s*$", marked, re.M), marked
    after = result.stdout.rsplit("-l leasegate.io/locked\n", 1)[1].split("===", 1)[0]
    assert "No resources found" in after, after
