"""A fake ALFWorld of ours for the ALFWorld adapter's tests: it reads our fixture's game files
(JSON we wrote, named game.tw-pddl like ALFWorld's) and is won by playing the game's
`solution` actions in order; any other action is answered as ALFWorld answers nonsense."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FakeAlfworld:
    def __init__(self) -> None:
        self.solution: list[str] = []
        self.played = 0

    def reset(self, task: Any) -> str:
        game = json.loads(Path(task.meta["game_file"]).read_text())
        self.solution, self.played = list(game["solution"]), 0
        return f"{game['intro']} Your task is to: {task.input}"

    def step(self, action: str) -> tuple[str, float, bool]:
        if action.strip().lower() != self.solution[self.played]:
            return "Nothing happens.", 0.0, False
        self.played += 1
        if self.played == len(self.solution):
            return "You won!", 1.0, True
        return f"The counter reads {self.played}.", 0.0, False
