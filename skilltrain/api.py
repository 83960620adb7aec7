"""The one-call Python API: `train(...)` and `evaluate(...)`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from skilltrain.config import ModelConfig, TrainConfig, parse_config
from skilltrain.data import Task, tasks_from_objects
from skilltrain.evaluation import Evaluator
from skilltrain.harness.chat import ChatHarness
from skilltrain.models.base import ChatModel
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.meter import Meter
from skilltrain.package import as_skill
from skilltrain.records import Rollout
from skilltrain.scoring import check_scorer, make_scorer
from skilltrain.skill import Skill
from skilltrain.trainer import Trainer


def train(tasks: Iterable[Task | dict] | None = None, skill: Skill | str | None = None, *,
          config: TrainConfig | dict | None = None, **kwargs: Any) -> Trainer:
    """Train and return the fitted Trainer (`best_skill_`, `summary_`, `run_dir_`).

    Keyword arguments that are not Trainer options are dotted config overrides, e.g.
    `train(tasks, skill, **{"train.epochs": 2})`.
    """
    options = {k: kwargs.pop(k) for k in ("target", "optimizer", "scorer", "harness",
                                          "callbacks", "replay") if k in kwargs}
    if isinstance(options.get("target"), str):
        kwargs["target.model"] = options.pop("target")
    if isinstance(options.get("optimizer"), str):
        kwargs["optimizer.model"] = options.pop("optimizer")
    return Trainer(config, **options, **kwargs).fit(tasks, skill)


class MemoryScores:
    """A score store for one call: no (skill, item, sample) is run twice, nothing is kept."""

    def __init__(self) -> None:
        self._rollouts: dict[tuple[str, str, int], Rollout] = {}

    def get(self, skill_hash: str, task_id: str, sample: int) -> Rollout | None:
        return self._rollouts.get((skill_hash, task_id, sample))

    def put(self, rollout: Rollout) -> None:
        self._rollouts[(rollout.skill_hash, rollout.task_id, rollout.sample)] = rollout


@asynccontextmanager
async def target_evaluator(tasks: list[Task], *,
                           target: str | dict[str, Any] | ModelConfig | ChatModel, scorer: Any,
                           harness: Any = None) -> AsyncIterator[tuple[Evaluator, Meter]]:
    """An Evaluator on `target` (a model string, a target config, or a ChatModel), open while
    the block runs, with the meter that counts its calls. `evaluate`, `compare` and the
    several-target `eval` all score through this one path, so they see the same requests."""
    scoring = make_scorer(scorer)
    if tasks:  # a scorer that raises fails here, not after the paid rollouts
        check_scorer(scoring, tasks[0])
    if isinstance(target, dict):  # the same forms a Trainer config takes for a role
        target = parse_config({"target": target}, "evaluate(target=...)").target
    meter = Meter()
    async with AsyncExitStack() as stack:
        if isinstance(target, (str, ModelConfig)):
            from skilltrain.models.registry import open_model

            mcfg = target if isinstance(target, ModelConfig) else ModelConfig(model=target)
            model: ChatModel = await open_model(mcfg, stack, "target")
            settings = CallSettings.for_role(mcfg, "target")
        else:
            model, settings = target, CallSettings()
        client = RoleClient(model, "target", meter, settings=settings)
        yield Evaluator(harness or ChatHarness(), client, scoring, MemoryScores(), tasks), meter


async def aevaluate(skill: Skill | str | Path, tasks: Iterable[Task | dict], *,
                    target: str | dict[str, Any] | ModelConfig | ChatModel, scorer: Any,
                    harness: Any = None) -> dict:
    skill = as_skill(skill)
    task_list = tasks_from_objects(tasks)
    async with target_evaluator(task_list, target=target, scorer=scorer,
                                harness=harness) as (evaluator, meter):
        result = await evaluator.mean(skill, task_list)
        limiter = evaluator.client.limiter
    result["usage"] = meter.summary()["roles"]
    if limiter is not None:  # 429s met and calls held back by the target's rate limiter
        result["rate_limits"] = limiter.stats.to_json()
    return result


def evaluate(skill: Skill | str | Path, tasks: Iterable[Task | dict], *,
             target: str | dict[str, Any] | ModelConfig | ChatModel, scorer: Any,
             harness: Any = None) -> dict:
    """Score one skill on tasks: mean, per-type breakdown, infrastructure failures, usage.

    `skill` is a Skill, its text, or the path of a skill package folder or a .md file (a
    one-line string naming one that exists; see package.as_skill).

    Raises NothingScored when no task could be scored, and EndpointDown when the target's
    endpoint cannot be reached, rather than returning a score of None."""
    return asyncio.run(aevaluate(skill, tasks, target=target, scorer=scorer, harness=harness))



