"""CPU accounting per benchmark phase: this benchmark's processes versus everything else.

The machine is shared with other sessions. For each phase the benchmark
records the CPU time the whole machine spent busy (``/proc/stat``) and the CPU
time of its own process tree (itself, the apiserver, etcd, the servers, wrk,
the load generator, py-spy: ``utime + stime`` of live descendants plus
``cutime + cstime`` of reaped children). The difference is what other sessions
used during the phase, reported in cores (2 = the whole machine).

>>> parse_proc_stat_cpu("cpu  100 5 50 800 20 0 5 0 0 0")
(160, 980)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_proc_stat_cpu(line: str) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate ``cpu`` line of /proc/stat."""
    fields = [int(x) for x in line.split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, total


def parse_pid_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime + cutime + cstime) from /proc/<pid>/stat."""
    rest = text[text.rindex(")") + 2:].split()  # fields from 3 (state) on
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, utime + stime + cutime + cstime


def _tree_jiffies(root: int) -> int:
    parents: dict[int, int] = {}
    spent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, jiffies = parse_pid_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry.name)] = ppid
        spent[int(entry.name)] = jiffies
    total = 0
    for pid in spent:
        node = pid
        while node not in (0, 1) and node != root:
            node = parents.get(node, 0)
        if node == root:
            total += spent[pid]
    return total


@dataclass(frozen=True)
class Sample:
    at: float
    machine_busy: int
    machine_total: int
    ours: int


def sample() -> Sample:
    with open("/proc/stat") as stat:
        busy, total = parse_proc_stat_cpu(stat.readline())
    return Sample(time.monotonic(), busy, total, _tree_jiffies(os.getpid()))


def between(start: Sample, end: Sample) -> dict[str, float]:
    """Cores used by the machine, by this benchmark, and by everything else."""
    seconds = max(end.at - start.at, 1e-6)
    machine = (end.machine_busy - start.machine_busy) / TICK / seconds
    ours = (end.ours - start.ours) / TICK / seconds
    return {"seconds": round(seconds, 1), "machine_cores": round(machine, 2),
            "bench_cores": round(ours, 2), "others_cores": round(max(machine - ours, 0.0), 2)}
