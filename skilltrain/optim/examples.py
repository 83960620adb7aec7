"""Demonstrations as a trainable part of the skill: a bounded block of worked train examples.

Measured on the embedded 0.5B target: eight train items with their reference answers pasted under
a weak skill lifted it from 0.00 to 0.57-0.73 on tasks where a hand-written rule reached
0.43-0.53. The engine therefore proposes, as one more candidate in each step, the incumbent with
an examples block made from train items and their *references* (correct by construction, never
an answer a model wrote). The block lives in a protected region, so step edits cannot corrupt it;
the candidate is screened and gated like any other, and the lineage shows the block's diff.

Choice of examples: the failure types of this step first (round-robin over types, so a few
frequent failure types cannot fill the block), drawn from train items that are *not* in the
step's batch where possible, so screening on that batch is not judging a skill on items it
quotes. Items whose text is too long to serve as an example are skipped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from skilltrain.data import Task
from skilltrain.optim.checks import display_answer, normalize
from skilltrain.skill import Skill

EXAMPLES_REGION = "examples"


@dataclass(frozen=True)
class ExampleBudget:
    max_examples: int = 8
    max_chars: int = 2400  # the whole block
    max_item_chars: int = 400  # one input + answer


def render_block(items: Sequence[Task]) -> str:
    parts = ["## Worked examples (input and the correct answer)"]
    for t in items:
        parts.append(f"Input: {t.input.strip()}\nAnswer: {display_answer(t.answer).strip()}")
    return "\n\n".join(parts)


def current_examples(skill: Skill, train: Sequence[Task]) -> list[Task]:
    """The train items the skill's examples block already holds, in block order."""
    block = skill.region(EXAMPLES_REGION)
    if not block:
        return []
    norm = normalize(block)
    found = [(norm.find(normalize(f"Input: {t.input.strip()}")), t) for t in train]
    return [t for at, t in sorted((p for p in found if p[0] >= 0), key=lambda p: p[0])]


def _fits(task: Task, budget: ExampleBudget) -> bool:
    return len(task.input) + len(display_answer(task.answer)) <= budget.max_item_chars


def propose_examples(skill: Skill, train: Sequence[Task], batch: Sequence[Task],
                     failed: Sequence[Task], *, seed: int,
                     budget: ExampleBudget = ExampleBudget()) -> Skill | None:
    """The incumbent with a refreshed examples block, or None when nothing would change.

    New examples are added for the failing types; when the block is full, the oldest examples
    make room (a few per step), so the block keeps moving towards what still fails."""
    if not failed:
        return None
    batch_ids = {t.id for t in batch}
    held = current_examples(skill, train)
    held_ids = {t.id for t in held}
    rng = random.Random(f"examples:{seed}:{skill.hash}")
    pool = [t for t in train if t.id not in held_ids and _fits(t, budget)]
    outside = [t for t in pool if t.id not in batch_ids]
    pool = outside or pool  # tiny train sets: the batch is all there is
    rng.shuffle(pool)
    by_type: dict[str, list[Task]] = {}
    for t in pool:
        by_type.setdefault(t.type, []).append(t)
    fail_types = list(dict.fromkeys(t.type for t in failed))
    room = max(2, budget.max_examples - len(held))  # a full block swaps a few per step
    fresh: list[Task] = []
    while len(fresh) < room and any(by_type.get(k) for k in fail_types):
        for kind in fail_types:
            if by_type.get(kind) and len(fresh) < room:
                fresh.append(by_type[kind].pop())
    if not fresh:  # failing types have no other train item: cover what there is
        fresh = pool[:room]
    keep = held[max(0, len(held) + len(fresh) - budget.max_examples):]  # oldest go first
    chosen = _within(keep + fresh, budget)
    if not chosen or [t.id for t in chosen] == [t.id for t in held]:
        return None
    return skill.with_region(EXAMPLES_REGION, render_block(chosen))


def _within(items: list[Task], budget: ExampleBudget) -> list[Task]:
    out: list[Task] = []
    for t in items:
        if len(out) >= budget.max_examples:
            break
        if len(render_block([*out, t])) > budget.max_chars:
            continue
        out.append(t)
    return out


def quoted_items(skill: Skill, tasks: Sequence[Task]) -> set[str]:
    """Ids of tasks whose input the skill quotes verbatim: screening leaves them out, since a
    skill holding an item's answer says nothing about new items."""
    text = normalize(skill.text)
    return {t.id for t in tasks if len(t.input.strip()) >= 8 and normalize(t.input) in text}
