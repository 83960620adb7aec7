"""A tiny interactive environment of ours for the environment harness's tests: a counter that
starts at 0 and must be brought to the task's reference number with `inc` / `dec` actions."""

from __future__ import annotations

import asyncio
from typing import Any


class CounterGame:
    """reset(task) -> observation; step(action) -> (observation, reward, done). Reward 1 and
    done when the counter reaches the goal; `give up` ends the episode with reward 0."""

    def __init__(self, start: int = 0):
        self.value, self.goal, self.closed = start, 0, False

    def reset(self, task: Any) -> str:
        self.goal = int(task.answer)
        return f"The counter is at {self.value}. Bring it to {self.goal}. Actions: inc, dec."

    def step(self, action: str) -> tuple[str, float, bool]:
        word = action.strip().lower()
        if word == "give up":
            return "You gave up.", 0.0, True
        if word not in ("inc", "dec"):
            return f"Unknown action {action!r}; use inc or dec.", 0.0, False
        self.value += 1 if word == "inc" else -1
        if self.value == self.goal:
            return f"The counter is at {self.value}: goal reached.", 1.0, True
        return f"The counter is at {self.value}.", 0.0, False

    def close(self) -> None:
        self.closed = True


class AsyncCounterGame(CounterGame):
    """The same game with coroutine methods, as an environment behind a network would be."""

    async def reset(self, task: Any) -> str:  # type: ignore[override]
        await asyncio.sleep(0)
        return CounterGame.reset(self, task)

    async def step(self, action: str) -> tuple[str, float, bool]:  # type: ignore[override]
        await asyncio.sleep(0)
        return CounterGame.step(self, action)


class BrokenGame(CounterGame):
    """Raises on its second step: an environment bug, to be an infrastructure failure."""

    steps = 0

    def step(self, action: str) -> tuple[str, float, bool]:
        self.steps += 1
        if self.steps == 2:
            raise RuntimeError("simulator crashed")
        return super().step(action)


class BadRewardGame(CounterGame):
    def step(self, action: str) -> Any:
        return "ok", "lots", False


class FailsOnGoal99(CounterGame):
    """Raises at reset for a goal of 99 only: some tasks fail on the environment, not all."""

    def reset(self, task: Any) -> str:
        if int(task.answer) == 99:
            raise RuntimeError("level 99 is missing")
        return super().reset(task)
