"""An independent checker for mutual exclusion: overlapping holds of one key.

Lock clients log every interval in which they *believed* they held a key
(from the moment ``acquire`` returned to the moment they called ``release`` or
their own lease ran out, whichever came first). Two intervals of different
holders on one key that intersect are a violation of mutual exclusion. The
checker is deliberately tiny and pure so it can be trusted (and is itself
tested with overlapping input, so it can fail).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Hold:
    """``holder`` believed it held ``key`` during ``[start, end]`` (wall-clock seconds)."""

    key: str
    start: float
    end: float
    holder: str


@dataclass(frozen=True)
class Overlap:
    first: Hold
    second: Hold

    @property
    def seconds(self) -> float:
        return min(self.first.end, self.second.end) - max(self.first.start, self.second.start)

    def __str__(self) -> str:
        return (f"{self.first.key}: {self.first.holder} [{self.first.start:.3f}, {self.first.end:.3f}] "
                f"overlaps {self.second.holder} [{self.second.start:.3f}, {self.second.end:.3f}] "
                f"by {self.seconds * 1000:.1f} ms")


def overlaps(holds: Iterable[Hold]) -> list[Overlap]:
    """Every pair of intersecting holds of one key by different holders.

    Sorting by start and sweeping keeps it O(n log n + violations): a hold can
    only intersect holds that started before the latest end seen so far.
    """
    by_key: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        if hold.end < hold.start:
            raise ValueError(f"hold ends before it starts: {hold}")
        by_key[hold.key].append(hold)
    found: list[Overlap] = []
    for key_holds in by_key.values():
        key_holds.sort()
        active: list[Hold] = []
        for hold in key_holds:
            active = [a for a in active if a.end >= hold.start]
            found.extend(Overlap(a, hold) for a in active if a.holder != hold.holder)
            active.append(hold)
    return found
