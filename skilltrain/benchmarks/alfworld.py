"""ALFWorld: text household games played turn by turn through the environment harness.

Payload: ALFWorld's game files (`.../trial_*/game.tw-pddl`, with `traj_data.json` beside each),
from the user's `$ALFWORLD_DATA` (what `alfworld-download` fills) or `--data-dir`. The paper's
manifest names games by path: the trial folder or its game file, relative to the data folder.
A task is one game: its type is the task family (the folder name before the first `-`, e.g.
`pick_and_place_simple`), so reports break results down per family; `meta["game_file"]` is the
absolute path the environment loads. Success is ALFWorld's `won` within the step limit
(`environment.max_steps`; SPEC.md gives no step limit for the paper, so ours stays at its
default) and the scorer is `reward`.

`AlfworldEnv` plays a game with the `alfworld` and `textworld` packages (not a dependency of
ours: `pip install alfworld`), imported only when a game starts; it has not been run against a
real ALFWorld install here (tests use a fake environment of ours with the same interface).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skilltrain.benchmarks.base import Benchmark, BenchmarkError, read_json
from skilltrain.benchmarks.paper import paper_overrides
from skilltrain.data import Task

NAME = "alfworld"
GAME = "game.tw-pddl"
ENV = "skilltrain.benchmarks.alfworld:AlfworldEnv"

SKILL = """---
name: alfworld
description: Complete household tasks in a text environment.
---

# Household tasks

Read the goal, look around, and act one command at a time (e.g. "go to desk 1", "take mug 1
from desk 1"). End each reply with one line "ACTION: <command>".
"""


def _goal(trial: Path) -> str:
    """The task description from traj_data.json when present (the game shows it too)."""
    path = trial / "traj_data.json"
    if not path.is_file():
        return ""
    data = read_json(path)
    try:
        return str(data["turk_annotations"]["anns"][0]["task_desc"]).strip()
    except (KeyError, IndexError, TypeError):
        return ""


def items(root: Path) -> dict[str, Task]:
    games = sorted(root.rglob(GAME))
    if not games:
        raise BenchmarkError(f"benchmark {NAME}: no {GAME} files under {root}; get the game "
                             f"files from {BENCHMARK.source} (alfworld-download) and put them "
                             "there, or set $ALFWORLD_DATA")
    found: dict[str, Task] = {}
    for game in games:
        trial = game.parent
        rel = trial.relative_to(root).as_posix()
        family = trial.parent.name.split("-", 1)[0] or NAME
        goal = _goal(trial)
        text = f"Your task: {goal}" if goal else "Complete the task the game describes."
        task = Task(id=rel, input=text, answer="won", type=family,
                    meta={"game_file": str(game.resolve())})
        found[rel] = task
        found[f"{rel}/{GAME}"] = task  # a manifest may name the game file itself
    return found


class AlfworldEnv:
    """One ALFWorld game per instance: reset(task) loads `task.meta["game_file"]`; step
    returns (observation, 1.0 when won else 0.0, done)."""

    def __init__(self, max_episode_steps: int = 50):
        self.max_episode_steps = max_episode_steps
        self.env: Any = None

    def reset(self, task: Any) -> str:
        try:
            import textworld
            import textworld.gym
            from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
        except ImportError as exc:
            raise RuntimeError(f"ALFWorld needs the alfworld package ({exc}); "
                               "pip install alfworld") from None
        infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
        env_id = textworld.gym.register_game(task.meta["game_file"], infos,
                                             max_episode_steps=self.max_episode_steps,
                                             wrappers=[AlfredDemangler(), AlfredInfos])
        self.env = textworld.gym.make(env_id)
        observation, _ = self.env.reset()
        return str(observation)

    def step(self, action: str) -> tuple[str, float, bool]:
        observation, _score, done, info = self.env.step(action)
        won = bool(info.get("won"))
        return str(observation), 1.0 if won else 0.0, bool(done or won)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


BENCHMARK = Benchmark(
    name=NAME, description="ALFWorld: text household games (environment harness)",
    source="https://github.com/alfworld/alfworld", payload=f"the game files ({GAME})",
    skill=SKILL, scorer="reward", items=items, harness="environment", data_env="ALFWORLD_DATA",
    environment=ENV, paper=paper_overrides({"harness": "environment"}))
