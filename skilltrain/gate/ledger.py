"""The bookkeeping every rule decides with: one decision's requests and the paired outcomes.

Each rule only chooses *which* items to ask for and *when* to stop; the ledger guarantees that
no (skill, item, sample) is asked for twice within a decision and that a scorer bug surfaces
instead of being averaged in, and the pairs guarantee that an infrastructure failure on either
side drops the item from both, never scoring it as wrong.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction

from .decision import Evaluate, Outcome


def checked(task_id: str, value: object) -> Outcome:
    """Validate one outcome: a scorer bug must surface, not be averaged in."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"outcome for task {task_id!r} must be None or a number in [0, 1], "
                         f"got {value!r}")
    return float(value)


class Ledger:
    """The requests of one decision: each (side, item, sample) is asked for at most once."""

    def __init__(self, evaluate: Evaluate, candidate: object, incumbent: object) -> None:
        self._evaluate = evaluate
        self._skills = {"candidate": candidate, "incumbent": incumbent}
        self._seen: dict[tuple[str, str, int], Outcome] = {}
        self._candidate_items: set[str] = set()

    @property
    def new_evaluations(self) -> int:
        return len(self._seen)

    @property
    def candidate_items(self) -> int:
        return len(self._candidate_items)

    async def fetch(self, side: str, items: Sequence[str], sample: int) -> dict[str, Outcome]:
        missing = [t for t in dict.fromkeys(items) if (side, t, sample) not in self._seen]
        if missing:
            got = await self._evaluate(self._skills[side], missing, sample)
            for t in missing:
                if t not in got:
                    raise ValueError(f"evaluate returned no outcome for task {t!r}")
                self._seen[(side, t, sample)] = checked(t, got[t])
            if side == "candidate":
                self._candidate_items.update(missing)
        return {t: self._seen[(side, t, sample)] for t in items}

    async def fetch_both(
        self, items: Sequence[str], sample: int
    ) -> tuple[dict[str, Outcome], dict[str, Outcome]]:
        """Both sides at once, so a real target can serve them concurrently."""
        cand, inc = await asyncio.gather(
            self.fetch("candidate", items, sample), self.fetch("incumbent", items, sample)
        )
        return cand, inc


class Pairs:
    """Per-item outcomes of both sides; an item with a failure on either side is excluded."""

    def __init__(self) -> None:
        self.cand: dict[str, list[float]] = {}
        self.inc: dict[str, list[float]] = {}
        self.excluded: list[str] = []
        self.failed_resamples = 0

    def add_first(self, item: str, x: Outcome, y: Outcome) -> float | None:
        """Record the first sample of both sides; returns the difference, or None if excluded."""
        if x is None or y is None:
            self.excluded.append(item)
            return None
        self.cand[item] = [x]
        self.inc[item] = [y]
        return x - y

    def add_resample(self, item: str, x: Outcome, y: Outcome) -> None:
        """Add one more sample of each side; a failed one is skipped, not scored."""
        for store, value in ((self.cand, x), (self.inc, y)):
            if value is None:
                self.failed_resamples += 1
            else:
                store[item].append(value)

    @property
    def compared(self) -> int:
        return len(self.cand)

    def first_means(self) -> tuple[float, float]:
        if not self.cand:
            return 0.0, 0.0
        n = len(self.cand)
        return (math.fsum(v[0] for v in self.cand.values()) / n,
                math.fsum(v[0] for v in self.inc.values()) / n)

    def resolved_diffs(self) -> dict[str, float]:
        """Per-item difference of the sample means of the two sides."""
        return {t: _mean(self.cand[t]) - _mean(self.inc[t]) for t in self.cand}

    def exact_first_diff(self) -> Fraction:
        """Sum of first-sample differences in exact arithmetic, so racing and strict agree."""
        return sum((Fraction(self.cand[t][0]) - Fraction(self.inc[t][0]) for t in self.cand),
                   Fraction(0))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """``items`` in consecutive slices of ``size``: the unit after which a racing rule looks."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
