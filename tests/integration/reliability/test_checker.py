"""The overlap checker itself can fail: it finds overlaps that are there, and only those."""

from __future__ import annotations

import pytest

from tests.support.intervals import Hold, overlaps


def test_finds_an_overlap_of_two_holders() -> None:
    found = overlaps([Hold("k", 0, 2, "a"), Hold("k", 1.9, 3, "b"), Hold("j", 0, 5, "c")])
    assert [(o.first.holder, o.second.holder) for o in found] == [("a", "b")]
    assert found[0].seconds == pytest.approx(0.1)


def test_long_hold_overlapping_later_ones_is_found_every_time() -> None:
    found = overlaps([Hold("k", 0, 10, "a"), Hold("k", 1, 2, "b"), Hold("k", 3, 4, "c")])
    assert sorted(o.second.holder for o in found) == ["b", "c"]


def test_back_to_back_and_other_keys_are_fine() -> None:
    assert overlaps([Hold("k", 0, 1, "a"), Hold("k", 1.001, 2, "b"), Hold("j", 0.5, 1.5, "c")]) == []


def test_touching_intervals_count_as_overlap() -> None:
    assert len(overlaps([Hold("k", 0, 1, "a"), Hold("k", 1, 2, "b")])) == 1


def test_rejects_inverted_intervals() -> None:
    with pytest.raises(ValueError):
        overlaps([Hold("k", 2, 1, "a")])
