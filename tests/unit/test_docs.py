"""The documents name the tests that prove their promises: every such test must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([*REPO.glob("docs/*.md"), REPO / "README.md", REPO / "bench" / "RESULTS.md"])
TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_named_test_exists(document: Path) -> None:
    missing = []
    for path, name in set(TEST_REFERENCE.findall(document.read_text())):
        source = REPO / path
        if not source.exists():
            missing.append(path)
        elif name and not re.search(rf"^\s*(async )?def {name}\b", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"{document.name} names tests that do not exist: {missing}"


def test_the_invariants_name_tests() -> None:
    # Guards the guard: if the reference format changed, the test above would pass vacuously.
    assert len(TEST_REFERENCE.findall((REPO / "docs" / "INVARIANTS.md").read_text())) >= 20
