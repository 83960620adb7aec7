"""Does a skill carry over to the other models a user runs? One skill, several targets, one table.

Each target is scored through the same evaluation path as `evaluate` (`api.target_evaluator`),
one after the other (an embedded model is a server of its own), with a 95% interval on its mean:
Wilson for 0/1 scores, Student's t for graded ones. A target that cannot be reached or scores
nothing gets a row saying why instead of ending the table: the others are still worth reading.
Bad input (a scorer that raises, a target with no credentials) still raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skilltrain.api import target_evaluator
from skilltrain.config import ModelConfig
from skilltrain.data import Task, tasks_from_objects
from skilltrain.models.base import ChatModel, InfrastructureFailure, ModelError
from skilltrain.package import as_skill
from skilltrain.skill import Skill
from skilltrain.stats import mean_interval

Target = str | ModelConfig | ChatModel


@dataclass
class TargetScore:
    """One target's row: mean score with its 95% interval over the `n` items that were scored;
    `error` set (and the score None) when the target produced nothing to score."""

    target: str
    score: float | None
    ci95: tuple[float, float] | None
    n: int
    infra_failures: int
    by_type: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        ci = None if self.ci95 is None else [round(x, 4) for x in self.ci95]
        return {"target": self.target, "score": self.score, "ci95": ci, "n": self.n,
                "infra_failures": self.infra_failures, "by_type": self.by_type,
                "usage": self.usage, "error": self.error}


def target_name(target: Target) -> str:
    if isinstance(target, str):
        return target
    if isinstance(target, ModelConfig):
        return target.model
    return str(getattr(target, "name", type(target).__name__))


async def ascore_target(skill: Skill, tasks: list[Task], target: Target, *, scorer: Any,
                        harness: Any = None) -> TargetScore:
    name = target_name(target)
    try:
        async with target_evaluator(tasks, target=target, scorer=scorer,
                                    harness=harness) as (evaluator, meter):
            result = await evaluator.mean(skill, tasks)
            done = await evaluator.rollouts(skill, tasks)  # the same rollouts, from its store
    except (InfrastructureFailure, ModelError) as exc:
        # an unreachable endpoint or nothing scored is this target's row; a refused key is not
        if not isinstance(exc, InfrastructureFailure) and exc.kind == "fatal":
            raise
        return TargetScore(name, None, None, 0, len(tasks), error=" ".join(str(exc).split()))
    values = [v for v in map(evaluator.value, done) if v is not None]
    return TargetScore(name, result["score"], mean_interval(values), result["n"],
                       result["infra_failures"], result["by_type"], meter.summary()["roles"])


async def aevaluate_targets(skill: Skill | str, tasks: Iterable[Task | dict],
                            targets: Sequence[Target], *, scorer: Any,
                            harnesses: Sequence[Any] | None = None) -> list[TargetScore]:
    """`evaluate_targets`, awaitable."""
    start = as_skill(skill)  # a Skill, a package folder or .md path, or skill text
    task_list = tasks_from_objects(tasks)
    if harnesses is not None and len(harnesses) != len(targets):
        raise ValueError("evaluate_targets: one harness per target")
    rows = []
    for k, target in enumerate(targets):
        rows.append(await ascore_target(start, task_list, target, scorer=scorer,
                                        harness=None if harnesses is None else harnesses[k]))
    return rows


def evaluate_targets(skill: Skill | str, tasks: Iterable[Task | dict], targets: Sequence[Target],
                     *, scorer: Any, harnesses: Sequence[Any] | None = None
                     ) -> list[TargetScore]:
    """Score one skill on each target in turn; one row per target, in the order given.

    `harnesses`, when given, holds one harness per target (the agent harness picks its protocol
    from the target's name)."""
    return asyncio.run(aevaluate_targets(skill, tasks, targets, scorer=scorer,
                                         harnesses=harnesses))
