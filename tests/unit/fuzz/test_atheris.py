"""Run the coverage-guided atheris fuzzer for a fixed number of inputs: it must find no crash."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.figures import Figures
from tools.localcluster import REPO_ROOT

RUNS = 10_000

pytest.importorskip("atheris")


def test_atheris_finds_no_crash(figures: Figures) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.unit.fuzz.atheris_admission", f"-runs={RUNS}", "-max_len=4096",
         "-seed=1", "-print_final_stats=1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    tail = result.stderr[-4000:]
    assert result.returncode == 0, f"atheris found a failing input:\n{tail}"
    done = re.search(r"stat::number_of_executed_units:\s*(\d+)", result.stderr)
    assert done is not None and int(done.group(1)) >= RUNS, tail
    cov = re.search(r"cov: (\d+)", result.stderr)
    figures(f"atheris: {done.group(1)} coverage-guided inputs (libFuzzer), "
            f"{cov.group(1) if cov else '?'} coverage edges, 0 crashes")
