"""Where a rollout runs: the seam between the Evaluator and the harness.

The Evaluator owns what makes results reproducible (the score cache, scoring, the counts), so
where the harness does its work can change without changing a result: `LocalExecutor` runs it
in this process, as asyncio tasks; `ray_executor.RayExecutor` runs it on a Ray cluster, with the
response cache and the meter still in this (the driver) process. An executor only turns one
(skill, task, sample) into a Rollout; it never scores, and it never caches a rollout.

Infrastructure the executor itself depends on can fail too: a worker process that dies takes
its tasks with it. Such a task is run again elsewhere and counted under `WORKER_LOST`; one lost
too often comes back as a rollout with `error_kind` WORKER_LOST, an infrastructure failure that
is never scored as a wrong answer.
"""

from __future__ import annotations

from typing import Any, Protocol

from skilltrain.data import Task
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout
from skilltrain.skill import Skill

WORKER_LOST = "worker_lost"  # the counter and error kind of a task whose worker died


class Executor(Protocol):
    name: str

    async def run(self, skill: Skill, task: Task, sample: int = 0) -> Rollout: ...

    async def aclose(self) -> None: ...


class LocalExecutor:
    """Today's behaviour: the harness runs in this process, concurrently as asyncio tasks, its
    model calls limited by the target model's own concurrency."""

    name = "local"

    def __init__(self, harness: Any, client: RoleClient):
        self.harness = harness
        self.client = client

    async def run(self, skill: Skill, task: Task, sample: int = 0) -> Rollout:
        return await self.harness.run(skill, task, self.client, sample)

    async def aclose(self) -> None:
        return None


def lost_rollout(skill: Skill, task: Task, sample: int, attempts: int, reason: str) -> Rollout:
    """What a task whose workers kept dying returns: an infrastructure failure, not an answer."""
    return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample,
                   error=f"worker lost {attempts} times: {' '.join(reason.split())[:300]}",
                   error_kind=WORKER_LOST)
