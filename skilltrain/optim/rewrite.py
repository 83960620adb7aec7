"""Update modes beyond patching: `rewrite` (one call rewrites the skill from the selected edits)
and `full_rewrite` (each analyst writes a whole skill; one call picks the best).

A rewrite may only change the body: `Skill.with_body` carries front matter and protected
regions over from the current skill, whatever the model wrote. A length budget keeps a skill
from ballooning: a rewrite over it is discarded, never truncated into something nobody proposed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from skilltrain.data import Task
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.optim.memory import RejectedBuffer
from skilltrain.optim.patch import render_edits
from skilltrain.optim.prompts import render
from skilltrain.optim.reflect import minibatches, render_rollout
from skilltrain.optim.schemas import FullRewriteReply, RankReply, RewriteReply
from skilltrain.records import FailureRule, Rollout
from skilltrain.skill import Edit, Skill


@dataclass
class RewriteResult:
    candidate: Skill | None
    note: str


def within_budget(skill: Skill, max_tokens: int) -> bool:
    """SKILL.md's size (a package's other files are not what a rewrite writes)."""
    return (len(skill.text) + 3) // 4 <= max_tokens


async def rewrite(skill: Skill, edits: list[Edit], client: RoleClient, max_tokens: int
                  ) -> RewriteResult:
    if not edits:
        return RewriteResult(None, "no edit proposed")
    prompt = render("rewrite", skill=skill.body, edits=render_edits(edits, numbered=True),
                    max_tokens=max_tokens, max_chars=max_tokens * 4)
    try:
        reply = await client.structured([{"role": "user", "content": prompt}], RewriteReply,
                                        stage="update")
    except ModelError as exc:
        if exc.kind == "fatal":
            raise
        return RewriteResult(None, f"rewrite call failed ({exc.kind})")
    candidate = skill.with_body(reply.skill)
    if not within_budget(candidate, max_tokens):
        size = (len(candidate.text) + 3) // 4
        return RewriteResult(None, f"rewrite is {size} tokens, over the "
                                   f"{max_tokens}-token budget")
    return RewriteResult(candidate, "rewritten")


async def full_rewrite(skill: Skill, scored: Sequence[tuple[Task, Rollout]], client: RoleClient,
                       *, minibatch_size: int, rejected: RejectedBuffer, max_tokens: int,
                       failure: FailureRule = FailureRule()) -> RewriteResult:
    jobs = [("failures", mb) for mb in minibatches([x for x in scored if failure.failed(x[1])],
                                                   minibatch_size)]
    jobs += [("successes", mb) for mb in minibatches([x for x in scored if failure.passed(x[1])],
                                                     minibatch_size)]

    async def one(side: str, batch: list) -> tuple[Skill, str] | None:
        prompt = render("analyst_full", skill=skill.body, side=side,
                        rollouts="\n\n".join(render_rollout(t, r) for t, r in batch),
                        rejected=("\n" + rejected.render()) if rejected.entries else "",
                        max_tokens=max_tokens, max_chars=max_tokens * 4)
        try:
            reply = await client.structured([{"role": "user", "content": prompt}],
                                            FullRewriteReply, stage="reflect")
        except ModelError as exc:
            if exc.kind == "fatal":
                raise
            return None
        candidate = skill.with_body(reply.skill)
        if candidate.hash == skill.hash or not within_budget(candidate, max_tokens):
            return None
        return candidate, reply.patterns

    found = [c for c in await asyncio.gather(*(one(s, b) for s, b in jobs)) if c]
    if not found:
        return RewriteResult(None, "no usable rewrite proposed")
    if len(found) == 1:
        return RewriteResult(found[0][0], "one rewrite proposed")
    shown = "\n\n".join(f"### Candidate {i}\n<skill>\n{c.body}\n</skill>"
                        for i, (c, _) in enumerate(found, start=1))
    patterns = "\n".join(p for _, p in found if p)[:1500]
    prompt = render("pick_skill", skill=skill.body, patterns=patterns or "(none)",
                    candidates=shown)
    try:
        reply = await client.structured([{"role": "user", "content": prompt}], RankReply,
                                        stage="select")
        pick = next((n for n in reply.chosen if 1 <= n <= len(found)), 1)
    except ModelError as exc:
        if exc.kind == "fatal":
            raise
        pick = 1
    return RewriteResult(found[pick - 1][0], f"picked rewrite {pick} of {len(found)}")
