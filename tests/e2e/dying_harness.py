"""A chat harness that kills the process it runs in while a marker file exists: a worker lost
mid-task, at a moment the test chooses. Importable by Ray workers (it sits beside the driver
script, whose folder Ray puts on the workers' path)."""

from __future__ import annotations

import os
from pathlib import Path

from skilltrain.harness.chat import ChatHarness


class DyingHarness(ChatHarness):
    """`once`: the first task to find the marker removes it and dies (one worker lost);
    otherwise every task dies while the marker exists (a task that keeps losing workers).
    `only`: only that task id dies."""

    def __init__(self, marker: str, *, once: bool = True, only: str | None = None,
                 max_tokens: int = 512):
        super().__init__(max_tokens=max_tokens)
        self.marker, self.once, self.only = marker, once, only

    async def run(self, skill, task, client, sample=0):
        marker = Path(self.marker)
        if marker.exists() and self.only in (None, task.id):
            if self.once:
                try:
                    marker.unlink()
                except FileNotFoundError:  # another task of this worker took it first
                    return await super().run(skill, task, client, sample)
            os._exit(1)
        return await super().run(skill, task, client, sample)
