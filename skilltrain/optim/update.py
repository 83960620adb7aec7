"""Stage 5: apply the selected edits to make the candidate skill."""

from __future__ import annotations

from dataclasses import dataclass

from skilltrain.skill import Edit, EditResult, EditStatus, Skill


@dataclass
class Update:
    candidate: Skill
    results: list[EditResult]

    @property
    def applied(self) -> int:
        return sum(r.status is EditStatus.APPLIED for r in self.results)

    @property
    def changed(self) -> bool:
        return any(r.status is EditStatus.APPLIED for r in self.results)


def apply_patch(skill: Skill, edits: list[Edit]) -> Update:
    candidate, results = skill.apply(edits)
    return Update(candidate=candidate, results=results)
