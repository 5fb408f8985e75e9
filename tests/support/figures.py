"""Measured figures, printed in pytest's terminal summary (what docs/RELIABILITY.md quotes).

A conftest enables it with ``from tests.support.figures import figures, pytest_terminal_summary``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

Figures = Callable[[str], None]
_LINES: list[str] = []
_printed: list[bool] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """``figures("1234 inputs, 0 crashes")``: a line for the summary, tagged with the test."""

    def record(line: str) -> None:
        _LINES.append(f"{request.node.name}: {line}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LINES and not _printed:  # several conftests may import this hook
        _printed.append(True)
        terminalreporter.section("leasegate reliability figures")
        for line in _LINES:
            terminalreporter.write_line(line)
