"""The environment harness: the target plays an interactive task turn by turn.

A user's environment is a class named as "module:Class" with `reset(task) -> observation` and
`step(action) -> (observation, reward, done)`; either may be a coroutine function. A fresh
instance is made per rollout (rollouts run concurrently), from the configured `options` as
keyword arguments, and its `close()` is called at the end when it has one.

Each turn the target sees the skill in its system prompt and the conversation so far, and
replies; its action is the text after the last `ACTION:` line, else its reply's last non-empty
line (the trajectory records which, so a target that ignores the format shows where analysts
read). The episode ends when the environment says `done` or after `max_steps` steps.

The trajectory is the episode: the task, the first observation (an `environment` entry with
`event: reset`), each reply with its action, each observation with its reward, and last a
harness `episode` event holding the final reward, `done` and the step count, which the
`reward` scorer reads (bench_scorers.py). An environment that raises, or returns what is not
(observation, reward, done), ends the rollout as an infrastructure failure
(`error_kind: environment`): its bug is never a wrong answer.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skilltrain.data import Task
from skilltrain.harness.sandbox import clip_middle
from skilltrain.loading import load_callable
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout, Usage
from skilltrain.skill import Skill

INSTRUCTIONS = """\
You are acting in an interactive environment. Each message shows what you observe. Reply with
your reasoning if you like, then one line "ACTION: <your action>"; you will see its result in
the next message. Continue until the task is done."""

_ACTION_RE = re.compile(r"^[\W_]*action[*_\s]*:[*_\s]*(.*)$", re.IGNORECASE | re.MULTILINE)


class EnvironmentError_(RuntimeError):
    """The user's environment failed: an infrastructure failure, never a wrong answer."""


def load_environment(spec: str) -> Callable[..., Any]:
    """Import "module:Class" and check it has `reset` and `step`; a ValueError with a one-line
    message otherwise (the config layer turns it into a ConfigError)."""
    factory = load_callable(str(spec), "environment.env", kind="Class")
    attr = str(spec).rpartition(":")[2]
    missing = [m for m in ("reset", "step") if not callable(getattr(factory, m, None))]
    if inspect.isclass(factory) and missing:
        raise ValueError(f"environment.env {spec!r}: {attr} has no {' or '.join(missing)} "
                         "method; expected reset(task) and step(action)")
    return factory


def parse_action(text: str) -> tuple[str, str]:
    """(action, how): the last `ACTION:` line's text ("tag"), else the last non-empty line
    ("last_line"), else ("", "none")."""
    tagged = [m.group(1).strip() for m in _ACTION_RE.finditer(text or "")]
    if tagged and tagged[-1]:
        return tagged[-1], "tag"
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return (lines[-1], "last_line") if lines else ("", "none")


async def _call(method: Any, *args: Any) -> Any:
    """Call a user method, sync (in a thread: it may block) or async; any failure is the
    environment's."""
    try:
        if inspect.iscoroutinefunction(method):
            return await method(*args)
        result = await asyncio.to_thread(method, *args)
        return await result if inspect.isawaitable(result) else result
    except Exception as exc:  # noqa: BLE001 - the user's environment failed
        name = getattr(method, "__name__", "call")
        raise EnvironmentError_(f"environment {name}() raised {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:300]}") from None


def _step_result(result: Any) -> tuple[str, float, bool]:
    """(observation, reward, done) from what step() returned, checked: a reward that is not a
    finite number, or a shape that is not a triple, is the environment's bug."""
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise EnvironmentError_(f"environment step() returned {type(result).__name__}; "
                                "expected (observation, reward, done)")
    observation, reward, done = result
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) \
            or not math.isfinite(reward):
        raise EnvironmentError_(f"environment step() returned reward {reward!r}; expected a "
                                "finite number")
    return str(observation), float(reward), bool(done)


@dataclass
class _Episode:
    """One rollout's record so far: what the analysts read, and the tokens it cost."""

    trajectory: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


class EnvironmentHarness:
    """Plays an episode of the user's environment per rollout; see the module docstring."""

    name = "environment"

    def __init__(self, factory: Callable[..., Any] | str, *, max_steps: int = 30,
                 max_tokens: int = 512, options: Mapping[str, Any] | None = None,
                 observation_chars: int = 3000, trajectory_chars: int = 1500,
                 instructions: str | None = None):
        if max_steps < 1:
            raise ValueError("environment.max_steps must be at least 1")
        self.factory = load_environment(factory) if isinstance(factory, str) else factory
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.options = dict(options or {})
        self.observation_chars = observation_chars
        self.trajectory_chars = trajectory_chars
        self.instructions = INSTRUCTIONS if instructions is None else instructions

    def _system(self, skill: Skill) -> str:
        body = skill.for_target().strip()
        return f"{self.instructions}\n\n{body}" if body else self.instructions

    async def run(self, skill: Skill, task: Task, client: RoleClient, sample: int = 0
                  ) -> Rollout:
        started = time.monotonic()
        episode = _Episode()

        def rollout(**fields: Any) -> Rollout:
            return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample,
                           trajectory=episode.trajectory, usage=episode.usage,
                           wall_s=round(time.monotonic() - started, 3), **fields)

        env: Any = None
        try:
            try:
                env = self.factory(**self.options)
            except Exception as exc:  # noqa: BLE001 - the user's constructor failed
                raise EnvironmentError_(f"environment constructor raised "
                                        f"{type(exc).__name__}: {exc}") from None
            first = str(await _call(env.reset, task))
            return await self._play(env, first, skill, task, client, sample, episode, rollout)
        except EnvironmentError_ as exc:
            episode.trajectory.append({"role": "harness", "event": "environment_error",
                                       "message": str(exc)})
            return rollout(error=str(exc), error_kind="environment")
        finally:
            close = getattr(env, "close", None)
            if callable(close):
                try:
                    await _call(close)
                except EnvironmentError_:
                    pass  # the episode is over; a failing close changes nothing scored

    async def _play(self, env: Any, first: str, skill: Skill, task: Task, client: RoleClient,
                    sample: int, episode: _Episode, rollout: Callable[..., Rollout]) -> Rollout:
        clip, trajectory = self.trajectory_chars, episode.trajectory
        user = f"{task.input}\n\n{clip_middle(first, self.observation_chars)}".strip()
        messages: list[dict[str, Any]] = [{"role": "system", "content": self._system(skill)},
                                          {"role": "user", "content": user}]
        trajectory += [{"role": "user", "content": clip_middle(task.input, clip)},
                       {"role": "environment", "event": "reset",
                        "content": clip_middle(first, clip)}]  # analysts skip user entries
        reward, done, steps, action = 0.0, False, 0, ""
        while steps < self.max_steps:
            try:
                completion = await client.complete(messages, stage="rollout", sample=sample,
                                                   max_tokens=self.max_tokens)
            except ModelError as exc:
                if exc.kind == "fatal":
                    raise
                trajectory.append({"role": "harness", "event": "model_error", "kind": exc.kind,
                                   "message": exc.message})
                return rollout(error=exc.message, error_kind=exc.kind)
            episode.usage = episode.usage + completion.usage
            text = completion.text or ""
            action, how = parse_action(text)
            trajectory.append({"role": "assistant", "content": clip_middle(text, clip),
                               "action": clip_middle(action, clip), "action_from": how})
            observation, reward, done = _step_result(await _call(env.step, action))
            steps += 1
            trajectory.append({"role": "environment", "content": clip_middle(observation, clip),
                               "reward": reward, "done": done})
            if done:
                break
            messages += [{"role": "assistant", "content": text},
                         {"role": "user", "content": clip_middle(observation,
                                                                 self.observation_chars)}]
        if not done:
            trajectory.append({"role": "harness", "event": "step_limit",
                               "steps": self.max_steps})
        trajectory.append({"role": "harness", "event": "episode", "reward": reward,
                           "done": done, "steps": steps})
        return rollout(answer=action)
