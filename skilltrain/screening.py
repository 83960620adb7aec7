"""Screening: candidates meet the step's own train batch before any of them costs a gate pass.

The incumbent's outcomes on the batch are already paid for (they are the step's rollouts), so a
candidate's screen costs only its own rollouts there. A candidate passes when, on the same items,
it is right more often than the incumbent (strictly: a tie fixed nothing); the best passing one
goes to the validation gate. Items a candidate quotes verbatim (its worked examples) are left out
of its comparison: a skill holding an item's answer says nothing about new items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from skilltrain.data import Task
from skilltrain.records import Rollout
from skilltrain.skill import Skill


class _Evaluator(Protocol):
    async def rollouts(self, skill: Skill, tasks: Sequence[Task], sample: int = 0
                       ) -> list[Rollout]: ...

    def value(self, rollout: Rollout) -> float | None: ...


@dataclass
class Screen:
    """One candidate's result on the batch."""

    index: int
    items: int
    candidate_score: float | None
    incumbent_score: float | None
    left_out: int = 0
    stopped_early: bool = False

    @property
    def delta(self) -> float:
        if self.candidate_score is None or self.incumbent_score is None:
            return float("-inf")
        return self.candidate_score - self.incumbent_score

    @property
    def passed(self) -> bool:
        return self.items > 0 and self.delta > 1e-9

    def to_json(self) -> dict:
        return {"items": self.items, "candidate_score": _r(self.candidate_score),
                "incumbent_score": _r(self.incumbent_score), "left_out": self.left_out,
                "stopped_early": self.stopped_early,
                "delta": _r(self.delta) if self.items else None, "passed": self.passed}


@dataclass
class ScreenResult:
    screens: list[Screen] = field(default_factory=list)

    @property
    def best(self) -> Screen | None:
        passed = [s for s in self.screens if s.passed]
        return max(passed, key=lambda s: (s.delta, -s.index)) if passed else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


async def screen_one(evaluator: _Evaluator, index: int, skill: Skill, batch: Sequence[Task],
                     incumbent: Sequence[Rollout], leave_out: set[str]) -> Screen:
    """Score `skill` on the batch, paired item by item with the incumbent's rollouts.

    Racing: the first half is scored first, and a candidate that has not beaten the incumbent
    there stops (it would need the second half alone to carry it; measured, candidates that
    make the target ramble cost up to 25x a short answer to screen)."""
    kept = [(t, r) for t, r in zip(batch, incumbent) if t.id not in leave_out]
    half = (len(kept) + 1) // 2
    pairs: list[tuple[float, float]] = []
    stopped = False
    for first, chunk in ((True, kept[:half]), (False, kept[half:])):
        if not chunk:
            continue
        mine = await evaluator.rollouts(skill, [t for t, _ in chunk])
        got = [(evaluator.value(a), evaluator.value(b)) for a, (_, b) in zip(mine, chunk)]
        pairs += [(a, b) for a, b in got if a is not None and b is not None]
        if first and len(kept) > half and sum(a - b for a, b in pairs) <= 0:
            stopped = True
            break
    if not pairs:
        return Screen(index, 0, None, None, left_out=len(batch) - len(kept))
    return Screen(index, len(pairs), sum(a for a, _ in pairs) / len(pairs),
                  sum(b for _, b in pairs) / len(pairs), left_out=len(batch) - len(kept),
                  stopped_early=stopped)
