"""The worker side of `executor: ray` (ray_executor.py): the actors that run tasks for the
driver, and what a worker is given to open the target model.

A worker rebuilds the target model from the run's config, with the secrets it needs passed in
memory as actor arguments (remote_rollout.Secret): Ray writes every runtime_env, env_vars
included, into its logs in plain text on each node, so secrets never travel that way. It
reaches the driver through the Relay actor (a driver cannot host an actor): cache lookups wait
there for the driver's answer, cache writes and usage are posted there (remote_rollout.py).
Nothing here imports Ray at module level: Ray turns these classes into actors when a run
starts, and a worker imports it when it first needs the relay.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from contextlib import AsyncExitStack
from typing import Any

from pydantic import SecretStr

from skilltrain.config import ConfigError, ModelConfig
from skilltrain.data import Task
from skilltrain.models.base import ModelError
from skilltrain.models.breaker import Breaker, endpoint_of
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.remote_rollout import (
    KeyScrubbed,
    Secret,
    WorkerCache,
    WorkerClient,
    WorkerMeter,
    run_one,
)
from skilltrain.skill import Skill

# The environment a target model is opened from besides `api_key_env` (models/registry.py).
MODEL_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
# Per-minute limits of a role that the workers share: each worker gets its part.
SHARED_LIMITS = ("rpm", "tpm")


class Relay:
    """The mailbox between the workers and the driver (an async actor: a driver cannot host
    one). Lookups wait here for the driver's answer; posts wait to be taken."""

    def __init__(self) -> None:
        self._inbox: list[tuple[Any, ...]] = []
        self._waiting: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self._ready = asyncio.Event()

    async def lookup(self, key: str) -> Any:
        future = asyncio.get_running_loop().create_future()
        ident = next(self._ids)
        self._waiting[ident] = future
        self._inbox.append(("get", ident, key))
        self._ready.set()
        return await future

    async def post(self, attempt: int, event: tuple[Any, ...]) -> None:
        self._inbox.append(("event", attempt, event))
        self._ready.set()

    async def take(self, wait_s: float) -> list[tuple[Any, ...]]:
        if not self._inbox:
            try:
                await asyncio.wait_for(self._ready.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        items, self._inbox = self._inbox, []
        self._ready.clear()
        return items

    async def answer(self, answers: list[tuple[int, Any]]) -> None:
        for ident, value in answers:
            future = self._waiting.pop(ident, None)
            if future is not None and not future.done():
                future.set_result(value)


class RelayLink:
    """One task attempt's line to the driver, through the relay."""

    def __init__(self, relay: Any, attempt: int):
        self.relay, self.attempt, self.posted = relay, attempt, 0

    async def lookup(self, key: str) -> Any:
        try:
            return await self.relay.lookup.remote(key)
        except Exception as exc:  # the relay's node died: an infrastructure failure
            raise ModelError("connection", f"the driver's relay is unreachable ({exc})"
                             ) from None

    def post(self, event: tuple[Any, ...]) -> None:
        self.posted += 1
        self.relay.post.remote(self.attempt, event)


class RolloutWorker:
    """A Ray actor that runs tasks with one harness and one target model for the driver."""

    def __init__(self, harness: Any, target: tuple[str, Any], secrets: Secret, relay: str,
                 settings: CallSettings, replay: bool, cached: bool):
        # The relay by name, not by handle: an actor handle among a restartable actor's
        # arguments lives in the object store, and a restart fails once it is gone.
        self.harness, self.target, self.secrets, self.relay_name = harness, target, secrets, relay
        self.relay: Any = None
        self.settings, self.replay, self.cached = settings, replay, cached
        self.stack = AsyncExitStack()
        self.model: Any = None
        self.breaker: Breaker | None = None
        self.opening: asyncio.Lock | None = None

    async def _open(self) -> Any:
        self.opening = self.opening or asyncio.Lock()
        async with self.opening:
            if self.model is None:
                import ray

                self.relay = ray.get_actor(self.relay_name)
                kind, value = self.target
                if kind == "object":
                    model = value
                else:
                    from skilltrain.models.registry import open_model

                    os.environ.update(self.secrets.value)  # this worker's process only
                    model = await open_model(value, self.stack, "target")
                    inline = value.api_key.get_secret_value() if value.api_key else ""
                    model = KeyScrubbed(model, [*self.secrets.value.values(), inline])
                self.model = model
                self.breaker = Breaker("target", endpoint_of(model))
        return self.model

    async def ready(self) -> int:
        await self._open()
        return os.getpid()

    async def run(self, skill: Skill, task: Task, sample: int, attempt: int) -> dict[str, Any]:
        model = await self._open()
        link = RelayLink(self.relay, attempt)
        client = WorkerClient(model, "target", WorkerMeter(link),
                              cache=WorkerCache(link) if self.cached else None,  # type: ignore
                              settings=self.settings, replay=self.replay)
        client.breaker = self.breaker  # type: ignore[assignment]
        result = await run_one(self.harness, client, skill, task, sample)
        return {**result, "posted": link.posted}


def worker_target(target_cfg: ModelConfig | None, given: Any, client: RoleClient, *,
                  workers: int, slots: int) -> tuple[tuple[str, Any], Secret]:
    """How a worker gets the target model, and the secrets it needs: a model object the
    caller passed is shipped as it is (it must pickle); a configured one is opened on the
    worker from the same config, with the environment it is read from. The embedded local
    server is not started again: workers use the driver's, by its URL."""
    if given is not None:
        return ("object", given), Secret({})
    if target_cfg is None:
        raise ValueError("worker_target: give the target's config or a model object")
    update: dict[str, Any] = {"concurrency": slots}
    for name in SHARED_LIMITS:
        value = getattr(target_cfg, name, None)
        if isinstance(value, int) and value > 0 and workers > 1:
            update[name] = max(1, value // workers)
    spec = target_cfg.model
    if spec.startswith("local:"):
        update.update(model=client.model.name, base_url=client.model.base_url,
                      api_key=SecretStr("local"), api_key_env=None,
                      concurrency=min(slots, 2))
    elif spec.startswith("cmd:") and ("@local:" in spec or
                                      (target_cfg.base_url or "").startswith("local:")):
        raise ConfigError("executor: ray cannot run a cmd: target on the embedded local server "
                          "(it lives in the driver); give the CLI an endpoint URL",
                          "executor.kind")
    names = [n for n in (target_cfg.api_key_env, *MODEL_ENV) if n]
    secrets = {n: os.environ[n] for n in names if os.environ.get(n)}
    return ("config", target_cfg.model_copy(update=update)), Secret(secrets)
