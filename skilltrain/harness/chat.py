"""Direct chat: the skill is the target's system prompt, the task is the user message. A skill
package is shown as an agent would load it: SKILL.md, then the files it references, within
`package.shown_chars` (package_view.py; the prompt says what was cut)."""

from __future__ import annotations

import time

from skilltrain.data import Task
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout
from skilltrain.skill import Skill


class ChatHarness:
    name = "chat"

    def __init__(self, max_tokens: int = 512):
        self.max_tokens = max_tokens

    async def run(self, skill: Skill, task: Task, client: RoleClient, sample: int = 0) -> Rollout:
        messages = []
        shown = skill.for_target()  # a package: SKILL.md, then the files it references
        if shown.strip():
            messages.append({"role": "system", "content": shown})
        messages.append({"role": "user", "content": task.input})
        started = time.monotonic()
        try:
            completion = await client.complete(
                messages, stage="rollout", sample=sample, max_tokens=self.max_tokens
            )
        except ModelError as exc:
            if exc.kind == "fatal":
                raise
            return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample,
                           trajectory=[{"role": "user", "content": task.input}],
                           wall_s=time.monotonic() - started, error=exc.message,
                           error_kind=exc.kind)
        answer = completion.text.strip()
        return Rollout(
            task_id=task.id, skill_hash=skill.hash, sample=sample, answer=answer,
            trajectory=[{"role": "user", "content": task.input},
                        {"role": "assistant", "content": completion.text}],
            usage=completion.usage, wall_s=time.monotonic() - started,
        )
