"""lockcore.cli.output: tables and members as the CLI prints them."""

from __future__ import annotations

import pytest

from lockcore.cli.output import table


@pytest.mark.parametrize(("rows", "text"), [
    ([["A", "BB"], ["ccc", "d"]], "A     BB\nccc   d"),
    ([["NAME", ""], ["x", ""]], "NAME\nx"),  # trailing blanks trimmed
    ([["ONE"]], "ONE"),
])
def test_table(rows: list[list[str]], text: str) -> None:
    assert table(rows) == text
