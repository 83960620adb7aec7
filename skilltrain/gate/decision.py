"""What every gate rule shares with its callers: outcomes, the evaluator, the decision record.

Kept apart from the rules so that a caller (the trainer, the bench) can type against ``Gate``,
``Evaluate`` and ``Decision`` without caring which rule is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Outcome = float | None
"""A per-item score in [0, 1] (hard, soft or a mix); ``None`` is an infrastructure failure."""


class Evaluate(Protocol):
    """Scores ``skill`` on ``task_ids`` at sample index ``sample``; one entry per id.

    The caller caches by (skill hash, task id, sample), so repeating a triple costs nothing; a new
    sample index asks the target again.
    """

    async def __call__(
        self, skill: object, task_ids: Sequence[str], sample: int = 0
    ) -> dict[str, Outcome]: ...


@dataclass(frozen=True)
class Decision:
    """The outcome of one gate decision, with enough numbers to explain it in a report."""

    accepted: bool
    rule: str
    candidate_score: float
    """Candidate mean (first sample) over the compared items."""
    incumbent_score: float
    """Incumbent mean (first sample) over the same items."""
    items_used: int
    """Validation items the candidate was scored on."""
    new_evaluations: int
    """Distinct (skill, item, sample) triples requested in this decision, both sides."""
    excluded: int
    """Items dropped because either side had an infrastructure failure."""
    stopped_early: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Gate(Protocol):
    """An acceptance rule. ``items`` is the validation split in a fixed (seeded) order."""

    name: str

    async def decide(
        self, candidate: object, incumbent: object, items: Sequence[str], evaluate: Evaluate
    ) -> Decision: ...
