"""Direct chat: the skill is the target's system prompt, the task is the user message. A skill
package is shown as an agent would load it: SKILL.md, then the files it references, within
`package.shown_chars` (package_view.py; the prompt says what was cut)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from skilltrain.data import Task
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout
from skilltrain.skill import Skill

_MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
          ".gif": "image/gif", ".webp": "image/webp"}
INPUT_ERROR = "input"  # Rollout.error_kind of a task whose own files cannot be read


class TaskInputError(Exception):
    """A file the task names (an image) cannot be read: the task's data is at fault, not the
    skill, so the rollout is an infrastructure failure, never a wrong answer."""


def user_content(task: Task) -> str | list[dict[str, Any]]:
    """The task as the user message: its text, plus its images (`meta["images"]`: file paths)
    as OpenAI image parts with data URLs (the Anthropic backend converts them). Images are read
    here, at rollout time, so tasks stay small; the trajectory keeps only the text. Raises
    TaskInputError naming the file when one cannot be read."""
    images = task.meta.get("images") or []
    if not images:
        return task.input
    parts: list[dict[str, Any]] = [{"type": "text", "text": task.input}]
    for image in images:
        path = Path(str(image))
        media = _MEDIA.get(path.suffix.lower(), "image/png")
        try:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError as exc:
            raise TaskInputError(f"task {task.id}: image {path} cannot be read "
                                 f"({exc.strerror or type(exc).__name__})") from None
        parts.append({"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}})
    return parts


class ChatHarness:
    name = "chat"

    def __init__(self, max_tokens: int = 512):
        self.max_tokens = max_tokens

    async def run(self, skill: Skill, task: Task, client: RoleClient, sample: int = 0) -> Rollout:
        messages = []
        shown = skill.for_target()  # a package: SKILL.md, then the files it references
        if shown.strip():
            messages.append({"role": "system", "content": shown})
        started = time.monotonic()
        try:
            messages.append({"role": "user", "content": user_content(task)})
        except TaskInputError as exc:
            return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample,
                           trajectory=[{"role": "user", "content": task.input}],
                           error=str(exc), error_kind=INPUT_ERROR)
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
