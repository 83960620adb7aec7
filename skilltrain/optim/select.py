"""Stage 4: clip the merged patch to this step's learning rate.

When there are more edits than the budget, one ranking call picks the best ones. If the ranking
reply is unusable the step still proceeds with the merge's own order (failure-driven first), and
the fallback is recorded on the selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.optim.patch import Patch, render_edits
from skilltrain.optim.prompts import render
from skilltrain.optim.schemas import RankReply
from skilltrain.skill import Edit, Skill


@dataclass
class Selection:
    edits: list[Edit] = field(default_factory=list)
    budget: int = 0
    proposed: int = 0
    ranked: bool = False
    reasoning: str = ""
    fallback: str | None = None
    autonomous: dict | None = None


async def select_edits(skill: Skill, patch: Patch, budget: int, client: RoleClient,
                       *, floor: int | None = None) -> Selection:
    """Keep at most `budget` edits. With `floor` set (the autonomous schedule) the optimizer
    chooses how many, and its choice is clamped to [floor, budget]."""
    proposed = len(patch.edits)
    if floor is not None and proposed > floor:
        return await _autonomous(skill, patch, floor, budget, client)
    if proposed <= budget:
        return Selection(edits=list(patch.edits), budget=budget, proposed=proposed)
    return await _rank(skill, patch, budget, client, str(budget))


async def _autonomous(skill: Skill, patch: Patch, floor: int, ceiling: int, client: RoleClient
                      ) -> Selection:
    sel = await _rank(skill, patch, ceiling, client, f"between {floor} and {ceiling}")
    asked = len(sel.edits) if sel.ranked else None
    count = max(floor, min(ceiling, asked if asked is not None else ceiling, len(patch.edits)))
    if len(sel.edits) < count:  # pad a too-small choice with the merge's own order
        rest = [e for e in _ordered(patch) if e not in sel.edits]
        sel.edits = sel.edits + rest[: count - len(sel.edits)]
    sel.edits = sel.edits[:count]
    sel.budget = count
    sel.autonomous = {"proposed_count": asked, "count": count, "bounds": [floor, ceiling],
                      "reasoning": sel.reasoning}
    return sel


def _ordered(patch: Patch) -> list[Edit]:
    return sorted(patch.edits, key=lambda e: (e.source != "failure", -e.support))


async def _rank(skill: Skill, patch: Patch, budget: int, client: RoleClient, told: str
                ) -> Selection:
    proposed = len(patch.edits)
    prompt = render("rank", skill=skill.for_optimizer(), budget=told,
                    edits=render_edits(patch.edits, numbered=True),
                    patterns=patch.patterns[:1500] or "(none)")
    ordered = _ordered(patch)
    try:
        reply = await client.structured([{"role": "user", "content": prompt}], RankReply,
                                        stage="select")
    except ModelError as exc:
        if exc.kind == "fatal":
            raise
        return Selection(edits=ordered[:budget], budget=budget, proposed=proposed,
                         fallback=f"ranking call failed ({exc.kind}); kept merge order")
    chosen: list[int] = []
    for n in reply.chosen:
        if 1 <= n <= proposed and n - 1 not in chosen:
            chosen.append(n - 1)
    if not chosen:
        return Selection(edits=ordered[:budget], budget=budget, proposed=proposed,
                         reasoning=reply.reasoning,
                         fallback="ranking reply named no valid edit; kept merge order")
    return Selection(edits=[patch.edits[i] for i in chosen[:budget]], budget=budget,
                     proposed=proposed, ranked=True, reasoning=reply.reasoning)
