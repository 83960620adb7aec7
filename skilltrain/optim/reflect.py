"""Stage 2, the backward pass: analysts read scored rollouts and propose edits.

Failures and successes are analysed separately, in minibatches, one optimizer call each, all in
parallel. An analyst whose reply stays invalid is an infrastructure failure: it is recorded and
its minibatch contributes nothing, rather than a guessed patch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from skilltrain.data import Task
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.optim.memory import RejectedBuffer
from skilltrain.optim.patch import Patch
from skilltrain.optim.prompts import render
from skilltrain.optim.schemas import ALL_OPS, analyst_schema, ops_help
from skilltrain.records import Rollout
from skilltrain.skill import Skill


@dataclass
class ReflectResult:
    patches: list[Patch] = field(default_factory=list)
    reminders: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # why each failed call failed
    n_failures: int = 0
    n_successes: int = 0

    @property
    def failed_calls(self) -> int:
        return len(self.errors)


def _clip(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n // 2] + " [...] " + text[-n // 2 :]


def render_rollout(task: Task, rollout: Rollout, limit: int = 1500) -> str:
    """What an analyst sees of one rollout; long trajectories are cut in the middle."""
    score = rollout.score
    steps = [m for m in rollout.trajectory if m.get("role") not in ("system", "user")]
    lines = [f"### Task {task.id} (type: {task.type})", f"Input: {_clip(task.input, limit)}"]
    if len(steps) > 1:  # an agent run: show the steps, not only the final answer
        shown = json.dumps(steps, ensure_ascii=False)
        lines.append(f"Trajectory: {_clip(shown, limit)}")
    lines.append(f"Model answer: {_clip(rollout.answer, limit // 2)}")
    if score is not None:
        lines.append(f"Score: hard={score.hard:.2f} soft={score.soft:.2f}")
        if score.feedback:
            lines.append(f"Feedback: {_clip(score.feedback, 400)}")
    return "\n".join(lines)


REMINDERS = """
4. Some failures may happen although the skill already states the right rule: the model just did
   not follow it. Do not edit the body for those; put a one-line reminder for each such lapse in
   `reminders` (for example "Re-read the output format rule before answering.").
"""


def minibatches(items: Sequence, size: int) -> list[list]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


async def reflect(
    skill: Skill,
    scored: Sequence[tuple[Task, Rollout]],
    client: RoleClient,
    *,
    minibatch_size: int,
    budget: int,
    rejected: RejectedBuffer,
    success_threshold: float = 1.0,
    analyse_successes: bool = True,
    reminders: bool = False,
    ops: tuple[str, ...] = ALL_OPS,
) -> ReflectResult:
    """`reminders=True` turns on the skill-aware appendix: failure analysts class each failure
    as a defect of the skill (edit the body) or a lapse in following it (a short reminder)."""
    ok = [(t, r) for t, r in scored if r.ok]
    failures = [(t, r) for t, r in ok if r.score.hard < success_threshold]
    successes = [(t, r) for t, r in ok if r.score.hard >= success_threshold]
    result = ReflectResult(n_failures=len(failures), n_successes=len(successes))
    jobs = [("failure", mb) for mb in minibatches(failures, minibatch_size)]
    if analyse_successes:
        jobs += [("success", mb) for mb in minibatches(successes, minibatch_size)]

    async def analyse(side: str, batch: list[tuple[Task, Rollout]]) -> Patch | None:
        extra = {"reminders": REMINDERS if reminders else ""} if side == "failure" else {}
        schema = analyst_schema(ops, reminders and side == "failure")
        prompt = render(
            f"analyst_{side}", **extra, ops=ops_help(ops),
            skill=skill.text,
            rollouts="\n\n".join(render_rollout(t, r) for t, r in batch),
            rejected=("\n" + rejected.render()) if rejected.entries else "",
            budget=budget,
        )
        try:
            reply = await client.structured(
                [{"role": "user", "content": prompt}], schema, stage="reflect"
            )
        except ModelError as exc:
            if exc.kind == "fatal":
                raise
            result.errors.append(f"{side} analyst: {exc.kind}: {exc.message}"[:500])
            return None
        edits = [e.to_edit(side) for e in reply.edits[:budget]]
        result.reminders += list(getattr(reply, "reminders", []))
        return Patch(side=side, edits=edits, patterns=reply.patterns)

    patches = await asyncio.gather(*(analyse(side, mb) for side, mb in jobs))
    result.patches = [p for p in patches if p is not None]
    return result
