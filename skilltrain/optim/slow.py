"""The epoch boundary: the slow update (target-facing guidance) and the meta skill
(optimizer-facing notes), both written from the same before/after comparison.

The previous epoch's final skill and the current skill run on the same sample of train tasks;
each task is labelled improved, regressed, still failing or still passing. The slow update's
guidance replaces the protected slow-update block, so it is the only part of the skill this
update changes; the result is a candidate like any other and, by default, goes through the gate.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from skilltrain.data import Task
from skilltrain.models.client import RoleClient
from skilltrain.optim.prompts import render
from skilltrain.optim.reflect import render_rollout
from skilltrain.optim.schemas import MetaReply, SlowUpdateReply
from skilltrain.records import FailureRule, Rollout
from skilltrain.skill import SLOW_UPDATE_REGION, Skill

LABELS = ("improved", "regressed", "still failing", "still passing")


@dataclass
class Comparison:
    labels: dict[str, str] = field(default_factory=dict)  # task id -> label
    text: str = ""

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(self.labels.values())
        return {label: c.get(label, 0) for label in LABELS}


def sample_tasks(train: Sequence[Task], n: int, seed: int, epoch: int) -> list[Task]:
    pool = sorted(train, key=lambda t: t.id)
    random.Random(f"slow:{seed}:{epoch}").shuffle(pool)
    return pool[:n]


def label(before: Rollout, after: Rollout, failure: FailureRule = FailureRule()) -> str | None:
    if not (before.ok and after.ok):
        return None  # an infrastructure failure on either side says nothing about the skill
    was, now = failure.passed(before), failure.passed(after)
    if now and not was:
        return "improved"
    if was and not now:
        return "regressed"
    return "still passing" if now else "still failing"


def compare(tasks: Sequence[Task], before: Sequence[Rollout], after: Sequence[Rollout],
            max_shown: int = 12, failure: FailureRule = FailureRule()) -> Comparison:
    result = Comparison()
    shown: list[str] = []
    for task, b, a in zip(tasks, before, after):
        lab = label(b, a, failure)
        if lab is None:
            continue
        result.labels[task.id] = lab
        if lab != "still passing" and len(shown) < max_shown:
            shown.append(f"[{lab.upper()}]\nBefore: {b.answer[:200]!r}\n"
                         + render_rollout(task, a, limit=600))
    result.text = "\n\n".join(shown) or "(every sampled task passed with both skills)"
    return result


async def slow_update(previous: Skill, current: Skill, comparison: Comparison,
                      client: RoleClient) -> tuple[Skill, str]:
    """Returns the candidate (current with a new slow-update block) and the model's analysis."""
    prompt = render("slow_update", previous=previous.body, current=current.body,
                    comparison=comparison.text, counts=comparison.counts,
                    guidance=current.region(SLOW_UPDATE_REGION) or "(none yet)")
    reply = await client.structured([{"role": "user", "content": prompt}], SlowUpdateReply,
                                    stage="slow_update")
    return current.with_region(SLOW_UPDATE_REGION, reply.guidance), reply.analysis


async def meta_notes(previous: Skill, current: Skill, comparison: Comparison, steps: list[dict],
                     notes: str, client: RoleClient) -> str:
    shown = "\n".join(
        f"- step {r['step']}: {r.get('outcome')} "
        f"(val {r.get('val_candidate')} vs {r.get('val_incumbent')})" for r in steps
    ) or "(none)"
    prompt = render("meta", previous=previous.body, current=current.body,
                    comparison=comparison.text, counts=comparison.counts, steps=shown,
                    notes=notes or "(none)")
    reply = await client.structured([{"role": "user", "content": prompt}], MetaReply,
                                    stage="meta")
    return reply.notes.strip()
