"""bench/apiprofile.py reads `go tool pprof -top -cum` output: seconds and milliseconds, long names."""

from __future__ import annotations

import pytest

from bench.apiprofile import _CUM_LINE, _seconds


@pytest.mark.parametrize(("line", "name", "seconds"), [
    ("         0     0%  0.18%      2.08s 36.68%  k8s.io/apiserver/pkg/admission/plugin/webhook/validating."
     "(*validatingDispatcher).callHook",
     "k8s.io/apiserver/pkg/admission/plugin/webhook/validating.(*validatingDispatcher).callHook", 2.08),
    ("     1.01s 17.81% 18.17%      1.46s 25.75%  encoding/json.appendCompact", "encoding/json.appendCompact", 1.46),
    ("      10ms  0.18%  0.35%      250ms  4.41%  k8s.io/apiserver/pkg/endpoints/handlers.transformResponseObject",
     "k8s.io/apiserver/pkg/endpoints/handlers.transformResponseObject", 0.25),
    ("     0.04s  0.71% 65.61%      0.13s  2.29%  runtime.tryDeferToSpanScan (inline)",
     "runtime.tryDeferToSpanScan (inline)", 0.13),
])
def test_cumulative_line(line: str, name: str, seconds: float) -> None:
    match = _CUM_LINE.match(line)
    assert match is not None
    assert match.group(3) == name and _seconds(match.group(1), match.group(2)) == pytest.approx(seconds)


@pytest.mark.parametrize("line", ["Showing nodes accounting for 2.54s, 44.80% of 5.67s total",
                                  "      flat  flat%   sum%        cum   cum%", ""])
def test_headers_are_not_functions(line: str) -> None:
    assert _CUM_LINE.match(line) is None
