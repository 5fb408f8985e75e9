"""Saturation throughput with wrk (Debian's wrk 4.1) and bench/wrk.lua.

wrk is closed-loop: ``connections`` keep-alive connections each send the next
request as soon as the previous answer arrives, which is what saturation
means. Its latency figures are reported for completeness only; latency at a
fixed rate comes from :mod:`bench.loadgen` (open loop).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("wrk.lua")


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise FileNotFoundError("wrk is not installed: `make bench` installs it (apt-get install -y wrk)")
    return path


def saturate(url: str, bodies: Path, *, seconds: float, connections: int = 16,
             threads: int = 1) -> dict[str, Any]:
    """Run wrk for ``seconds``; returns throughput (req/s), answer counts and wrk's latency."""
    cmd = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           "--timeout", "10s", "-s", str(LUA), url, "--", str(bodies)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
            seconds_run = data["duration_us"] / 1e6
            answered = data["allowed"] + data["denied"]
            data["rps"] = round(data["requests"] / seconds_run, 1)
            data["denied_fraction"] = round(data["denied"] / answered, 4) if answered else None
            data["connections"] = connections
            return data
    raise RuntimeError(f"wrk printed no result ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
