"""Rollouts on a Ray cluster (`executor: ray`): the harness work (agent loops, the sandbox, agent
CLIs, the target's model calls) runs in worker processes spread over the cluster's nodes, while
the run's state stays in this process, the driver (the workers' side: ray_worker.py).

Placement: `workers` actors (default: one per node, spread over the nodes), each running up to
`concurrency` tasks at once and reserving `num_cpus` per task, so Ray puts a worker only where
num_cpus x concurrency CPUs are free. The driver keeps the queue and hands each task to the
least busy worker that is up, so a worker that dies holds no backlog.

What stays in the driver: the response and score caches, the meter and its ledger, scoring.
One asyncio task of the driver serves the relay the workers post to: it answers cache lookups
from the driver's cache and applies the cache writes and usage the workers send.

A worker that dies (killed, out of memory, its node lost) fails its tasks with Ray's actor
errors; Ray restarts the actor, and each lost task is run again, on another worker when there
is one (while none is up, the task waits for one instead of spending its retries), up to
`retries` times, each counted in the meter as retries.worker_lost. A task lost every time is an
infrastructure failure (failures.worker_lost), never a score.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from skilltrain.config import ConfigError, ModelConfig
from skilltrain.config_sections import ExecutorConfig
from skilltrain.data import Task
from skilltrain.executor import WORKER_LOST, lost_rollout
from skilltrain.models.base import InfrastructureFailure
from skilltrain.models.client import RoleClient
from skilltrain.ray_cluster import ray_session
from skilltrain.ray_worker import Relay, RolloutWorker, worker_target
from skilltrain.records import Rollout
from skilltrain.remote_rollout import add_counts, apply_event, raise_packed
from skilltrain.skill import Skill

READY_TIMEOUT_S = 180.0
SETTLE_TIMEOUT_S = 60.0  # a finished task's posts reach the driver in milliseconds


class WorkersLost(InfrastructureFailure):
    """No Ray worker came back for long enough: the cluster cannot run the tasks."""


class RayExecutor:
    """The driver's side: hands tasks to workers, serves the relay, retries lost tasks."""

    name = "ray"

    def __init__(self, ray: Any, workers: list[Any], relay: Any, client: RoleClient, *,
                 slots: int, retries: int):
        self._ray, self.workers, self.relay, self.client = ray, workers, relay, client
        self.retries = retries
        self._busy = [0] * len(workers)
        self._up = [asyncio.Event() for _ in workers]  # cleared while a worker restarts
        for event in self._up:
            event.set()
        self._recovering: set[asyncio.Task] = set()
        self._room = asyncio.Semaphore(slots * len(workers))
        self._attempts = itertools.count()
        self._applied: Counter = Counter()
        self._changed = asyncio.Condition()
        self._serving: asyncio.Task | None = None
        self._broken: BaseException | None = None
        errors = ray.exceptions
        self._lost = (errors.RayActorError, errors.WorkerCrashedError, errors.ObjectLostError,
                      errors.LocalRayletDiedError)

    async def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until every worker has opened its model; a worker that cannot start (its
        harness or model cannot be built there) fails the run with one line."""
        errors = self._ray.exceptions
        try:
            await asyncio.wait_for(asyncio.gather(*(w.ready.remote() for w in self.workers)),
                                   timeout_s)
        except asyncio.TimeoutError:
            raise ConfigError(f"executor: the Ray workers did not start within {timeout_s:g}s "
                              "(see `ray status`: are executor.num_cpus x concurrency CPUs free "
                              "on a node?)") from None
        except (errors.RayTaskError, errors.RayActorError) as exc:
            cause = getattr(exc, "cause", None) or exc
            text = " ".join(str(cause).split())
            raise ConfigError(f"executor: a Ray worker could not start: {text[-300:]}") from None
        self._serving = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        cache, meter = self.client.cache, self.client.meter
        while True:
            try:
                items = await self.relay.take.remote(1.0)
            except self._lost:
                await asyncio.sleep(0.2)  # a restarted relay: its pending lookups fail over
                continue
            try:
                answers = [(item[1], cache.get(item[2]) if cache is not None else None)
                           for item in items if item[0] == "get"]
                for item in items:
                    if item[0] == "event":
                        apply_event(item[2], cache, meter)
                        self._applied[item[1]] += 1
            except BaseException as exc:  # tasks waiting on their events must not hang
                self._broken = exc
                async with self._changed:
                    self._changed.notify_all()
                raise
            if answers:
                self.relay.answer.remote(answers)
            if len(items) > len(answers):
                async with self._changed:
                    self._changed.notify_all()

    async def _settled(self, attempt: int, posted: int) -> None:
        """Wait until the driver has applied everything the attempt posted, so its usage is
        in the meter (and its replies in the cache) when the rollout is handed on. Posts can
        only be lost with the relay's process; then the rollout goes on, and the summary
        says its usage may be short."""
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(
                    lambda: self._broken is not None or self._applied[attempt] >= posted),
                    SETTLE_TIMEOUT_S)
        except asyncio.TimeoutError:
            meter = self.client.meter
            meter.warning = meter.warning or (
                "usage may be undercounted: calls made on a Ray worker did not reach the "
                "driver (its relay was lost)")
        self._applied.pop(attempt, None)
        if self._broken is not None:
            raise self._broken

    async def _pick(self, avoid: int | None) -> int:
        """The least busy worker that is up, another than `avoid` when there is one; while
        every worker is restarting, wait (a task must not spend its retries on a worker that
        is still coming back), at most READY_TIMEOUT_S."""
        while True:
            up = [i for i, event in enumerate(self._up) if event.is_set()]
            choice = [i for i in up if i != avoid] or up
            if choice:
                return min(choice, key=self._busy.__getitem__)
            waits = [asyncio.ensure_future(event.wait()) for event in self._up]
            done, pending = await asyncio.wait(waits, timeout=READY_TIMEOUT_S,
                                               return_when=asyncio.FIRST_COMPLETED)
            for waiting in pending:
                waiting.cancel()
            if not done:
                raise WorkersLost(f"every Ray worker has been down for {READY_TIMEOUT_S:g}s")

    def _down(self, index: int) -> None:
        """Worker `index` lost a task: Ray restarts it; it takes tasks again once it answers."""
        if self._up[index].is_set():
            self._up[index].clear()
            probe = asyncio.create_task(self._recover(index))
            self._recovering.add(probe)
            probe.add_done_callback(self._recovering.discard)

    async def _recover(self, index: int) -> None:
        while True:
            try:
                await asyncio.wait_for(self.workers[index].ready.remote(), READY_TIMEOUT_S)
            except (*self._lost, asyncio.TimeoutError):
                await asyncio.sleep(0.25)
                continue
            self._up[index].set()
            return

    async def run(self, skill: Skill, task: Task, sample: int = 0) -> Rollout:
        avoid: int | None = None
        reason = ""
        meter = self.client.meter
        for attempt in range(self.retries + 1):
            async with self._room:
                index = await self._pick(avoid)
                ident = next(self._attempts)
                self._busy[index] += 1
                try:
                    result = await self.workers[index].run.remote(skill, task, sample, ident)
                except self._lost as exc:
                    if getattr(exc, "actor_init_failed", False):
                        raise ConfigError(f"executor: a Ray worker could not restart: "
                                          f"{' '.join(str(exc).split())[-300:]}") from None
                    reason, avoid = str(exc).strip().splitlines()[0], index
                    self._down(index)
                    self._applied.pop(ident, None)
                    if attempt < self.retries:
                        meter.retries[WORKER_LOST] += 1
                    continue
                finally:
                    self._busy[index] -= 1
            await self._settled(ident, result["posted"])
            add_counts(meter, result["counts"])
            if result["error"] is not None:
                raise_packed(result["error"])
            return result["rollout"]
        meter.failures[WORKER_LOST] += 1
        return lost_rollout(skill, task, sample, self.retries + 1, reason)

    async def aclose(self) -> None:
        for probe in list(self._recovering):
            probe.cancel()
        if self._serving is not None:
            self._serving.cancel()
            await asyncio.gather(self._serving, return_exceptions=True)
            self._serving = None
        for actor in [*self.workers, self.relay]:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # already gone with its node
                pass


@asynccontextmanager
async def open_ray_executor(settings: ExecutorConfig, harness: Any, client: RoleClient, *,
                            target_cfg: ModelConfig | None = None, given: Any = None
                            ) -> AsyncIterator[RayExecutor]:
    """A RayExecutor for the block: connected (or a local cluster started), its workers up,
    and everything it started stopped at the end."""
    with ray_session(settings.address) as ray:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        count = settings.workers or max(1, len(nodes))
        slots = settings.concurrency or (target_cfg.concurrency if target_cfg else 8)
        need = settings.num_cpus * slots
        largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in nodes), default=0.0)
        if need > largest:
            raise ConfigError(f"executor: a worker reserves num_cpus x concurrency = {need:g} "
                              f"CPUs, and the largest node of the cluster has {largest:g}",
                              "executor.num_cpus")
        target, secrets = worker_target(target_cfg, given, client, workers=count, slots=slots)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                              soft=True)
        name = f"skilltrain-relay-{uuid.uuid4().hex}"
        relay = ray.remote(Relay).options(name=name, num_cpus=0, max_concurrency=100_000,
                                          max_restarts=-1, scheduling_strategy=here).remote()
        actor = ray.remote(RolloutWorker).options(
            num_cpus=need, max_concurrency=slots + 1, max_restarts=-1, max_task_retries=0,
            scheduling_strategy="SPREAD")
        try:
            workers = [actor.remote(harness, target, secrets, name, client.settings,
                                    client.replay, client.cache is not None)
                       for _ in range(count)]
        except (TypeError, ValueError, pickle.PicklingError) as exc:  # Ray pickles the args
            ray.kill(relay, no_restart=True)
            why = str(exc).splitlines()[0].rstrip(": =")[:200]
            raise ConfigError(f"executor: the harness or the target model cannot be sent to "
                              f"Ray workers ({why}); configure them instead of passing "
                              "objects that do not pickle", "executor.kind") from None
        executor = RayExecutor(ray, workers, relay, client, slots=slots,
                               retries=settings.retries)
        try:
            await executor.start()
            yield executor
        finally:
            await executor.aclose()
