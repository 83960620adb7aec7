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


async def select_edits(skill: Skill, patch: Patch, budget: int, client: RoleClient) -> Selection:
    proposed = len(patch.edits)
    if proposed <= budget:
        return Selection(edits=list(patch.edits), budget=budget, proposed=proposed)
    prompt = render("rank", skill=skill.text, budget=budget,
                    edits=render_edits(patch.edits, numbered=True),
                    patterns=patch.patterns[:1500] or "(none)")
    ordered = sorted(patch.edits, key=lambda e: (e.source != "failure", -e.support))
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
