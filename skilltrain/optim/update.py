"""Stage 5: make the candidate skill from the selected edits.

Modes: `patch` applies the edits in order, each with a status; `rewrite` has one call rewrite
the body from them (front matter and protected regions carried over, length-budgeted). With the
skill-aware appendix on, the step's lapse reminders go into the protected appendix as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skilltrain.models.client import RoleClient
from skilltrain.optim.appendix import add_reminders, compact
from skilltrain.optim.rewrite import rewrite
from skilltrain.skill import Edit, EditResult, EditStatus, Skill


@dataclass
class Update:
    base: Skill
    candidate: Skill
    results: list[EditResult] = field(default_factory=list)
    reminders: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def applied(self) -> int:
        return sum(r.status.landed for r in self.results)

    @property
    def changed(self) -> bool:
        return self.candidate.hash != self.base.hash

    def edits_for_memory(self) -> list[Edit]:
        """What the rejected buffer should remember: the edits that really shaped the candidate."""
        edits = [r.edit for r in self.results if r.status.landed]
        edits += [Edit(op="append", content=f"(appendix reminder) {r}", source="failure")
                  for r in self.reminders]
        if not edits and self.changed:  # a whole-skill rewrite: remember it as one replacement
            edits = [Edit(op="replace", target="(whole skill)", content=self.candidate.body[:600],
                          source="rewrite")]
        return edits


def apply_patch(skill: Skill, edits: list[Edit]) -> Update:
    candidate, results = skill.apply(edits)
    return Update(base=skill, candidate=candidate, results=results)


async def update_skill(skill: Skill, edits: list[Edit], client: RoleClient, *, mode: str,
                       max_tokens: int, reminders: list[str] | None = None,
                       appendix_threshold: int = 8, appendix_keep: int = 5) -> Update:
    if mode == "rewrite":
        result = await rewrite(skill, edits, client, max_tokens)
        done = [EditResult(e, EditStatus.APPLIED) for e in edits] if result.candidate else []
        update = Update(base=skill, candidate=result.candidate or skill, results=done,
                        note=result.note)
    else:
        update = apply_patch(skill, edits)
    if reminders:
        with_notes, added = add_reminders(update.candidate, reminders)
        update.candidate = await compact(with_notes, client, appendix_threshold, appendix_keep)
        update.reminders = added
    return update
