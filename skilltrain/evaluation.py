"""Running and scoring a skill on tasks, through the per-item score cache.

This is the forward pass (stage 1) and the `evaluate` callable the gate uses: both go through
the same cache, so no (skill, task, sample) is ever run twice, and a resumed run pays nothing
twice. Infrastructure failures come back as rollouts with `error` set and no score; a first
measurement in which nothing at all could be scored raises NothingScored instead of reporting
a score of None.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from skilltrain.data import Task
from skilltrain.executor import Executor, LocalExecutor
from skilltrain.models.base import InfrastructureFailure, ModelError
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout
from skilltrain.scoring import Scorer, ScorerError, score_rollout
from skilltrain.skill import Skill

# Failure kinds a harness reports without a failed model call (the client counts those), so
# the evaluator counts them for the summary's infra_failures.by_kind: "input", a task file
# (an image) that cannot be read (harness/chat.py); "sandbox", the agent's sandbox could not
# run code (harness/agent.py); "environment", a user's environment raised
# (harness/environment.py); "command" / "command_failed", an agent CLI could not start or
# failed (harness/command.py). Its "timeout" is left out: a model call's timeout has that name.
NO_CALL_FAILURES = frozenset({"input", "sandbox", "environment", "command", "command_failed"})


class NothingScored(InfrastructureFailure):
    """Every item of an evaluation failed on infrastructure and nothing had been scored before:
    a mean of nothing is not a result. Before this, `eval` printed "score None on 0 tasks" and
    `train` went on to "train" against a validation score of nothing, both exiting 0."""

    def __init__(self, rollouts: Sequence[Rollout]):
        kinds = Counter(r.error_kind or "no score" for r in rollouts)
        first = next((r.error for r in rollouts if r.error), "") or ""
        shown = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
        super().__init__(f"nothing could be scored: all {len(rollouts)} items failed "
                         f"({shown}); first error: {' '.join(first.split())[:200]}")
        self.kinds = dict(kinds)


class Harness(Protocol):
    name: str

    async def run(self, skill: Skill, task: Task, client: RoleClient, sample: int = 0
                  ) -> Rollout: ...


class ScoreStore(Protocol):
    def get(self, skill_hash: str, task_id: str, sample: int) -> Rollout | None: ...
    def put(self, rollout: Rollout) -> None: ...


class Evaluator:
    def __init__(self, harness: Harness, client: RoleClient, scorer: Scorer,
                 cache: ScoreStore, tasks: Sequence[Task], *, metric: str = "hard",
                 soft_weight: float = 0.5, judge_retries: int = 1,
                 executor: Executor | None = None):
        self.harness = harness
        self.client = client
        self.scorer = scorer
        self.cache = cache
        self.tasks = {t.id: t for t in tasks}
        self.metric = metric
        self.soft_weight = soft_weight
        self.judge_retries = judge_retries
        # Where harness.run happens (executor.py); scoring and both caches stay here.
        self.executor = executor or LocalExecutor(harness, client)
        self.new_rollouts = 0
        self.infra_failures = 0
        self.scored = 0  # rollouts with a score this evaluator has handed out, cached or new
        self.on_progress: Callable[[int, int], None] | None = None  # (done, total) of new work

    async def _one(self, skill: Skill, task: Task, sample: int) -> Rollout:
        cached = self.cache.get(skill.hash, task.id, sample)
        if cached is not None:
            self.scored += cached.ok
            return cached
        rollout = await self.executor.run(skill, task, sample)
        self.new_rollouts += 1
        if rollout.error is None:
            try:
                rollout.score = await score_rollout(self.scorer, task, rollout)
            except ScorerError:
                raise
            except ModelError as exc:  # an LLM judge that failed is infrastructure too
                if exc.kind == "fatal":
                    raise
                rollout.error, rollout.error_kind = f"scorer: {exc.message}", exc.kind
        if rollout.error is not None:
            self.infra_failures += 1
            meter = getattr(self.client, "meter", None)
            if rollout.error_kind in NO_CALL_FAILURES and meter is not None:
                meter.failures[rollout.error_kind] += 1  # no model call counted it (client.py)
        self.scored += rollout.ok
        self.cache.put(rollout)
        return rollout

    async def rollouts(self, skill: Skill, tasks: Sequence[Task], sample: int = 0
                       ) -> list[Rollout]:
        total = sum(self.cache.get(skill.hash, t.id, sample) is None for t in tasks)
        done = 0

        async def tracked(task: Task) -> Rollout:
            nonlocal done
            rollout = await self._one(skill, task, sample)
            if self.on_progress is not None and total:
                done += 1
                self.on_progress(min(done, total), total)
            return rollout

        return list(await asyncio.gather(*(tracked(t) for t in tasks)))

    def value(self, rollout: Rollout) -> float | None:
        if not rollout.ok:
            return None
        return rollout.score.value(self.metric, self.soft_weight)  # type: ignore[union-attr]

    async def __call__(self, skill: Skill, task_ids: Sequence[str], sample: int = 0
                       ) -> dict[str, float | None]:
        """The gate's view: one outcome per item, None where the infrastructure failed."""
        done = await self.rollouts(skill, [self.tasks[i] for i in task_ids], sample)
        return {r.task_id: self.value(r) for r in done}

    async def mean(self, skill: Skill, tasks: Sequence[Task]) -> dict:
        """Mean score over the items that did not fail, with a per-task-type breakdown.

        Raises NothingScored when there were items, none could be scored, and this evaluator
        has never scored anything: that is the first measurement (a run's baseline, an `eval`)
        and the endpoint or harness is producing no results at all. A later mean with nothing
        scored (e.g. the end-of-run evaluation after an outage) is reported with n = 0, so the
        run's summary is still written."""
        done = await self.rollouts(skill, tasks)
        if done and not self.scored:
            raise NothingScored(done)
        by_type: dict[str, list[float]] = {}
        values: list[float] = []
        for task, r in zip(tasks, done):
            v = self.value(r)
            if v is None:
                continue
            values.append(v)
            by_type.setdefault(task.type, []).append(v)
        return {
            "score": round(sum(values) / len(values), 4) if values else None,
            "n": len(values),
            "infra_failures": len(done) - len(values),
            "by_type": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_type.items())},
        }
