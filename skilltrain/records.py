"""Plain records shared by every layer: usage, scores and rollouts.

They live at the bottom of the import graph so that scorers, harnesses, the optimizer and the
store can all speak about the same objects without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field


class Usage(BaseModel):
    """Tokens and calls. `cache_read_tokens` and `cache_write_tokens` are the parts of
    `prompt_tokens` a provider's prompt cache served or stored (Anthropic bills them at their own
    rates, models/prices.py), so totals stay comparable across backends; records written before
    they existed read back with 0."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Score(BaseModel):
    """How well one rollout did. `hard` is correctness, `soft` partial credit, both in [0, 1]."""

    hard: float = Field(ge=0.0, le=1.0)
    soft: float = Field(ge=0.0, le=1.0)
    feedback: str = ""

    def value(self, metric: str = "hard", soft_weight: float = 0.5) -> float:
        if metric == "hard":
            return self.hard
        if metric == "soft":
            return self.soft
        return (1 - soft_weight) * self.hard + soft_weight * self.soft


class Rollout(BaseModel):
    """One target run of one task with one skill version.

    `error` is set for infrastructure failures (timeout, HTTP error, unparsable output); such a
    rollout has no score and never counts as a wrong answer.
    """

    task_id: str
    skill_hash: str
    sample: int = 0
    answer: str = ""
    trajectory: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    wall_s: float = 0.0
    error: str | None = None
    error_kind: str | None = None
    score: Score | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.score is not None


@dataclass(frozen=True)
class FailureRule:
    """What counts as a failure: one definition for the analysts, the full rewrite, the slow
    update's before/after labels and the step's failure list, taken from the gate's metric, so
    the optimizer works on what the gate measures. A rollout with an infrastructure failure is
    neither a failure nor a success: it says nothing about the skill."""

    metric: str = "hard"  # "hard", "soft" or "mix" (Score.value)
    soft_weight: float = 0.5
    threshold: float = 1.0  # at or above: a success

    def failed(self, rollout: Rollout) -> bool:
        if not rollout.ok:
            return False
        return rollout.score.value(self.metric, self.soft_weight) < self.threshold  # type: ignore[union-attr]

    def passed(self, rollout: Rollout) -> bool:
        return rollout.ok and not self.failed(rollout)
