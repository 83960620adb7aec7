"""The skill-aware appendix: short reminders for lapses (the skill was right, the model did not
follow it), kept in a protected region, de-duplicated, and compacted by one call when they pile
up."""

from __future__ import annotations

import re

from skilltrain.models.client import RoleClient
from skilltrain.optim.prompts import render
from skilltrain.optim.schemas import CompactReply
from skilltrain.skill import APPENDIX_REGION, Skill


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def reminders_of(skill: Skill) -> list[str]:
    block = skill.region(APPENDIX_REGION) or ""
    return [line[2:].strip() for line in block.splitlines() if line.startswith("- ")]


def add_reminders(skill: Skill, new: list[str]) -> tuple[Skill, list[str]]:
    """Returns the skill with unseen reminders appended, and the reminders actually added."""
    current = reminders_of(skill)
    seen = {_key(r) for r in current}
    added: list[str] = []
    for text in new:
        one = " ".join(text.split())
        if one and _key(one) not in seen:
            seen.add(_key(one))
            added.append(one)
    if not added:
        return skill, []
    return _write(skill, current + added), added


def _write(skill: Skill, reminders: list[str]) -> Skill:
    body = "## Reminders\n" + "\n".join(f"- {r}" for r in reminders)
    return skill.with_region(APPENDIX_REGION, body)


async def compact(skill: Skill, client: RoleClient, threshold: int, limit: int) -> Skill:
    current = reminders_of(skill)
    if len(current) <= threshold:
        return skill
    prompt = render("compact", limit=limit, reminders="\n".join(f"- {r}" for r in current))
    reply = await client.structured([{"role": "user", "content": prompt}], CompactReply,
                                    stage="appendix")
    kept, _ = add_reminders(skill.with_region(APPENDIX_REGION, "## Reminders"),
                            list(reply.reminders)[:limit])
    return kept
