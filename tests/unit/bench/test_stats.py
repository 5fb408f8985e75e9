"""The benchmark's pure helpers: percentiles, schedules, request mix, profile parsing.

Correctness only: speed targets live in bench/, never in tests.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from bench.profile import hot_spots, parse_collapsed
from bench.stats import percentile, ratio, schedule, summarize, weighted_cycle


def test_percentile_is_nearest_rank() -> None:
    data = [float(i) for i in range(1, 1001)]  # 1..1000
    assert percentile(data, 50) == 500.0
    assert percentile(data, 99) == 990.0
    assert percentile(data, 99.9) == 999.0
    assert percentile(data, 100) == 1000.0
    assert percentile([5.0], 99.9) == 5.0
    assert math.isnan(percentile([], 50))


def test_percentile_ignores_order_and_rejects_bad_pct() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_summarize_reports_milliseconds() -> None:
    out = summarize([0.001] * 99 + [0.1])
    assert out["count"] == 100
    assert out["p50_ms"] == 1.0 and out["p99_ms"] == 1.0 and out["p99_9_ms"] == 100.0
    assert out["max_ms"] == 100.0


def test_schedule_is_evenly_spaced_open_loop() -> None:
    offsets = schedule(500, 2.0)
    assert len(offsets) == 1000
    assert offsets[0] == 0.0 and offsets[1] == pytest.approx(0.002)
    assert offsets[-1] == pytest.approx(1.998)


def test_weighted_cycle_has_exact_counts_and_no_long_runs() -> None:
    cycle = weighted_cycle([("u", 8), ("s", 1), ("o", 1)])
    assert Counter(cycle) == {"u": 8, "s": 1, "o": 1}
    runs = max(len(run) for run in "".join(cycle).replace("s", " ").replace("o", " ").split())
    assert runs <= 5


def test_ratio_handles_zero_and_nan() -> None:
    assert ratio(3, 4) == 0.75
    assert math.isnan(ratio(1, 0))
    assert math.isnan(ratio(math.nan, 1))


def test_collapsed_stacks_drop_process_thread_and_idle_frames() -> None:
    lines = [
        'process 12:"gunicorn";thread (0x1);run (gunicorn/arbiter.py:1);handle (gunicorn/workers/gthread.py:5) 3',
        'process 12:"gunicorn";thread (0x1);run (gunicorn/arbiter.py:1);loads (json/__init__.py:346) 6',
        'process 12:"gunicorn";thread (0x2);run (x.py:1);select (selectors.py:468) 50',
        'process 12:"gunicorn";thread (0x2);loop (y.py:1);EpollSelector.select (selectors.py:468) 40',
    ]
    stacks = parse_collapsed(lines)
    assert [count for _, count in stacks] == [3, 6, 50]
    assert stacks[0][0] == ["run (gunicorn/arbiter.py:1)", "handle (gunicorn/workers/gthread.py:5)"]


def test_hot_spots_charges_each_sample_to_the_innermost_known_area() -> None:
    stacks = [(["handle (gunicorn/workers/gthread.py:5)", "loads (json/__init__.py:346)"], 6),
              (["handle (gunicorn/workers/gthread.py:5)"], 3),
              (["validate (webhook/app.py:90)", "lookup (webhook/leases.py:120)"], 1)]
    spots = hot_spots(stacks)
    areas = dict(spots["areas"])
    assert spots["samples"] == 10
    assert areas["JSON decode/encode"] == 60.0
    assert areas["gunicorn"] == 30.0
    assert areas["leasegate lookup (lease source)"] == 10.0
    assert spots["self"][0] == ("loads (json/__init__.py:346)", 60.0)


def test_cpu_accounting_parsers() -> None:
    from bench.cpu import Sample, between, parse_pid_stat, parse_proc_stat_cpu

    assert parse_proc_stat_cpu("cpu  100 5 50 800 20 0 5 0 0 0") == (160, 980)
    line = "4242 (gunicorn: worker [x) y]) S 4240 4242 4242 0 -1 4194560 100 0 0 0 700 300 20 10 20 0"
    assert parse_pid_stat(line) == (4240, 1030)
    start, end = Sample(0.0, 0, 0, 0), Sample(10.0, 2000, 2000, 500)
    assert between(start, end)["others_cores"] == pytest.approx((2000 - 500) / 100 / 10, abs=0.6)
