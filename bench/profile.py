"""Sampling profiles of the running gunicorn workers with py-spy, summarised into hot spots.

``py-spy record --subprocesses --gil --format raw`` attaches to the gunicorn
master and its workers without touching their code and writes collapsed stacks
(``frame;frame;... count``) of the threads *holding the GIL*: in a gthread
worker that is the Python work that limits throughput (a thread blocked in a
syscall or waiting for the GIL is not charged). C work done with the GIL
released (OpenSSL encryption, the kernel's socket work) is not in these
samples; the baseline's profile shows how much of the stack is like that. :func:`hot_spots` turns those into the functions
with the most self time and the share of samples spent under each area of the
stack (TLS, JSON, Flask/Werkzeug, gunicorn, logging, metrics, leasegate).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# (area, regex on "function (file:line)") in priority order: the first match on
# the stack from the leaf up names the area a sample is charged to.
AREAS: tuple[tuple[str, str], ...] = (
    ("leasegate lookup (lease source)", r"webhook/leases\.py|webhook/apiserver\.py"),
    ("prometheus metrics", r"prometheus_client"),
    ("logging/audit", r"/logging/|webhook/audit\.py|webhook/logs\.py"),
    ("urllib3/http client", r"urllib3|http/client\.py"),
    ("JSON decode/encode", r"json/"),
    ("TLS (ssl)", r"ssl\.py|\bread \(ssl|\brecv_into|do_handshake|sendall"),
    ("leasegate parse/decide", r"webhook/review\.py|webhook/decision\.py|webhook/app\.py|lockcore/"),
    ("Flask/Werkzeug", r"flask/|werkzeug/"),
    ("gunicorn", r"gunicorn/"),
)


def py_spy() -> str:
    path = shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "py-spy")
    if not Path(path).exists():
        raise FileNotFoundError("py-spy is not installed: `make bench` installs it")
    return path


def start(pid: int, seconds: float, out: Path, rate: int = 250) -> subprocess.Popen[bytes]:
    """Start recording ``pid`` and its children for ``seconds`` (returns the py-spy process)."""
    return subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--duration", str(round(seconds)),
         "--rate", str(rate), "--gil", "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# Leaf frames that mean "waiting", not working (py-spy's idle detection misses some).
IDLE_LEAVES = re.compile(r"^(EpollSelector\.select|Condition\.wait|_worker|Arbiter\.sleep|"
                         r"Arbiter\.wait_for_signals|Event\.wait|Thread\.join) \(")

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """Collapsed stacks -> (frames root..leaf, count); process/thread frames dropped."""
    out: list[tuple[list[str], int]] = []
    for line in lines:
        match = _LINE.match(line.strip())
        if not match:
            continue
        frames = [f for f in match["stack"].split(";")
                  if not f.startswith("process ") and not f.startswith("thread ")]
        if frames and IDLE_LEAVES.match(frames[-1]):
            continue
        out.append((frames, int(match["count"])))
    return out


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py:12)``."""
    match = re.match(r"^(?P<fn>.*?) \((?P<file>.*):(?P<line>\d+)\)$", frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['fn']} ({path}:{match['line']})"


def hot_spots(stacks: list[tuple[list[str], int]], *, top: int = 12) -> dict[str, Any]:
    """Top self-time functions, top inclusive functions, and samples per area (percent)."""
    total = sum(count for _, count in stacks) or 1
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        self_time[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += count
        area = "other"
        for frame in reversed(frames):
            hit = next((name for name, pattern in AREAS if re.search(pattern, frame)), None)
            if hit:
                area = hit
                break
        areas[area] += count

    def pct(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, round(100.0 * c / total, 1)) for name, c in counter.most_common(n)]

    return {"samples": total, "self": pct(self_time, top), "inclusive": pct(inclusive, top * 2),
            "areas": pct(areas, len(AREAS) + 1)}


def summarize_file(raw: Path, *, top: int = 12) -> dict[str, Any]:
    return hot_spots(parse_collapsed(raw.read_text(errors="replace").splitlines()), top=top)
