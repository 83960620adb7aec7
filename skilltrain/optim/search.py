"""Stages 3-5 as a search: the step's proposals become several candidate skills.

The paper's path (merge every patch, clip by the learning rate, apply) gives one candidate. A weak
optimizer's proposals vary a lot in quality (measured with the 1.5B model: five proposals for
the same failures scored 0.53 / 1.00 / 1.00 / 0.80 / 0.07 on train), and a merge can blur the
good one into the others, so each sampled rule is a candidate of its own. The engine adds a
demonstrations candidate (optim/examples.py) and, when answers hold the right content in the
wrong form, an answer-form candidate (optim/form.py). The candidates are then screened on the step's
train batch (skilltrain/screening.py) and only the best one is gated; this module builds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from skilltrain.data import Task
from skilltrain.models.client import RoleClient
from skilltrain.optim.aggregate import Aggregated, aggregate
from skilltrain.optim.checks import EditChecker
from skilltrain.optim.examples import ExampleBudget, propose_examples
from skilltrain.optim.form import form_edit
from skilltrain.optim.patch import Patch
from skilltrain.optim.reflect import ReflectResult
from skilltrain.optim.select import Selection, select_edits
from skilltrain.optim.update import Update, apply_patch, update_skill
from skilltrain.records import Rollout
from skilltrain.skill import Edit, Skill


@dataclass
class Candidate:
    """One candidate skill of a step and where it came from."""

    name: str  # "merged", "rule-2", "examples", "rule-2+examples", ...
    update: Update
    patterns: str = ""

    @property
    def skill(self) -> Skill:
        return self.update.candidate

    def edits_for_memory(self) -> list[Edit]:
        edits = self.update.edits_for_memory()
        if self.name == "examples" and not edits:
            edits = [Edit(op="replace", target="(examples block)", source="rewrite",
                          content=(self.skill.region("examples") or "")[:400])]
        return edits

    def describe(self) -> dict:
        return {"name": self.name, "hash": self.skill.hash, "tokens": self.skill.tokens,
                "edits": [r.to_json() for r in self.update.results]}


@dataclass
class SearchSettings:
    budget: int
    mode: str = "patch"
    group_size: int = 8
    max_skill_tokens: int = 2000
    floor: int | None = None  # the autonomous schedule's lower bound
    demonstrations: bool = True
    answer_form: bool = True
    examples: ExampleBudget = field(default_factory=ExampleBudget)
    appendix_threshold: int = 8
    appendix_keep: int = 5


@dataclass
class Proposed:
    candidates: list[Candidate]
    merged: Patch
    aggregated: Aggregated
    selection: Selection
    merged_update: Update


async def propose(skill: Skill, reflection: ReflectResult, client: RoleClient, settings:
                  SearchSettings, *, train: Sequence[Task], batch: Sequence[Task],
                  failures: Sequence[tuple[Task, Rollout]], seed: int) -> Proposed:
    """Every distinct candidate of this step, the paper's merged one first."""
    checker = reflection.checker or EditChecker(skill, reflection.checks)
    aggregated = await aggregate(skill, reflection.patches, client,
                                 group_size=settings.group_size,
                                 limit=max(8, 3 * settings.budget), checker=checker)
    merged = aggregated.patch
    selection = await select_edits(skill, merged, settings.budget, client, floor=settings.floor)
    merged_update = await update_skill(
        skill, selection.edits, client, mode=settings.mode,
        max_tokens=settings.max_skill_tokens, reminders=reflection.reminders,
        appendix_threshold=settings.appendix_threshold, appendix_keep=settings.appendix_keep)
    candidates = [Candidate("merged", merged_update, merged.patterns)]
    for p in reflection.patches:
        if p.side == "rule" and p.edits:
            candidates.append(Candidate(f"rule-{p.proposal + 1}", apply_patch(skill, p.edits),
                                        p.patterns))
    batch_ids = {t.id for t in batch}
    if settings.answer_form:
        edit = form_edit(skill, failures, [t for t in train if t.id not in batch_ids] or train)
        if edit is not None:
            candidates.append(Candidate("form", apply_patch(skill, [edit]), edit.rationale))
    if settings.demonstrations:
        shown = propose_examples(skill, train, batch, [t for t, _ in failures], seed=seed,
                                 budget=settings.examples)
        if shown is not None:
            candidates.append(Candidate("examples", Update(base=skill, candidate=shown),
                                        "worked examples of the failing types"))
    return Proposed(_distinct(skill, candidates), merged, aggregated, selection, merged_update)


def combine(instructions: Candidate, examples: Candidate) -> Candidate | None:
    """The instruction candidate's edits on top of the examples candidate: instructions and
    demonstrations trained together. None when the edits do not land on it."""
    edits = [r.edit for r in instructions.update.results if r.status.landed]
    if not edits:
        return None
    update = apply_patch(examples.skill, edits)
    if not update.changed or update.candidate.hash == instructions.skill.hash:
        return None
    update.base = instructions.update.base
    return Candidate(f"{instructions.name}+examples", update, instructions.patterns)


def _distinct(base: Skill, candidates: list[Candidate]) -> list[Candidate]:
    seen = {base.hash}
    out = []
    for c in candidates:
        if c.skill.hash in seen:
            continue
        seen.add(c.skill.hash)
        out.append(c)
    return out
