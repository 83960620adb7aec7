"""Pruning: an optional end-of-run stage that removes what the best skill does not need.

Training only adds and rewrites, so a skill collects text that no longer earns its place (a
rule a later one supersedes, a paragraph that never helped); every extra token is paid on every
call of the target, and compact skills are part of the method's claim. This stage tries to
remove each `## ` section and each paragraph of the best skill, largest first, and keeps a
removal only when the gate finds the shorter skill no worse on validation.

**The non-inferiority rule.** A gate tests superiority (does the candidate beat the
incumbent?), so pruning asks it the question with the roles swapped: the skill WITH the text is
the candidate, the skill WITHOUT it the incumbent. The text must earn its place: the removal is
kept iff

1. the gate does not accept the longer skill over the shorter one (no evidence that the text
   helps, under the configured rule, with its racing and re-sampling), and
2. on the items the gate compared, the shorter skill's mean is not below the longer one's (a
   removal never lowers the validation score, even where the gate's test is too weak to see a
   small loss), and
3. more items were compared than dropped for infrastructure failures (a decision on nothing
   removes nothing).

Front matter and protected regions are never candidates, and a removal that would change one
(or leave markers unpaired) is not tried. A fenced code block is never split. Headings alone
are not candidates (a section is). The stage stops at `prune_tries` decisions or at the budget.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skilltrain.gate import Decision
from skilltrain.models.meter import BudgetExceeded
from skilltrain.run_state import Version
from skilltrain.skill import Skill, SkillError

if TYPE_CHECKING:
    from skilltrain.run import RunContext

PRUNE_FILE = "prune.json"
_SECTION = re.compile(r"##[ \t]")
_BREAK = re.compile(r"#{1,2}[ \t]")  # a heading that ends a ## section
_FENCE = re.compile(r"[ \t]{0,3}(```|~~~)")


@dataclass(frozen=True)
class Unit:
    """A removable block of the skill: a `## ` section or a paragraph, as written."""

    kind: str
    text: str

    @property
    def tokens(self) -> int:
        return (len(self.text) + 3) // 4


def _blocks(lines: list[str]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Line ranges of the sections and of the paragraphs of one editable stretch of text."""
    paragraphs, sections = [], []
    start, fence, section = None, False, None
    for i, line in enumerate([*lines, ""]):
        end = i == len(lines)
        if section is not None and (end or (not fence and _BREAK.match(line))):
            sections.append((section, i))
            section = None
        if not fence and not end and _SECTION.match(line):
            section = i
        if _FENCE.match(line):
            fence = not fence
        blank = not line.strip()
        if start is None and not blank and not end:
            start = i
        elif start is not None and (end or (blank and not fence)):
            paragraphs.append((start, i))
            start = None
    return sections, paragraphs


def units(skill: Skill) -> list[Unit]:
    """Every section and paragraph outside front matter and protected regions, largest first
    (ties in document order); a paragraph that is all headings is no unit."""
    text, spans, pos = skill.text, skill.protected_spans(), 0
    stretches = []
    for s, e in spans:
        stretches.append(text[pos:s])
        pos = e
    stretches.append(text[pos:])
    found: list[Unit] = []
    for stretch in stretches:
        lines = stretch.splitlines(keepends=True)
        sections, paragraphs = _blocks(lines)
        for kind, ranges in (("section", sections), ("paragraph", paragraphs)):
            for a, b in ranges:
                block = "".join(lines[a:b]).strip("\n")
                body = [ln for ln in block.splitlines() if ln.strip()]
                if kind == "paragraph" and all(ln.lstrip().startswith("#") for ln in body):
                    continue
                if block.strip() and all(u.text != block for u in found):
                    found.append(Unit(kind, block))
    order = {u: i for i, u in enumerate(found)}
    return sorted(found, key=lambda u: (-len(u.text), order[u]))


def _protected(skill: Skill) -> list[str]:
    return [skill.text[s:e] for s, e in skill.protected_spans()]


def without(skill: Skill, block: str) -> Skill | None:
    """`skill` without its one occurrence of `block` (at line starts, outside protected text),
    blank lines around the gap closed up; None when there is not exactly one such occurrence,
    or when the result would change a protected part or not be a valid skill."""
    text, spans = skill.text, skill.protected_spans()
    hits, at = [], text.find(block)
    while at != -1:
        end = at + len(block)
        whole = (at == 0 or text[at - 1] == "\n") and (end == len(text) or text[end] == "\n")
        if whole and not any(at < e and end > s for s, e in spans):
            hits.append(at)
        at = text.find(block, at + 1)
    if len(hits) != 1:
        return None
    before, after = text[: hits[0]].rstrip("\n"), text[hits[0] + len(block):].lstrip("\n")
    joined = before + "\n\n" + after if before and after else (before + "\n" if before else after)
    shorter = dataclasses.replace(skill, text=joined)  # a package keeps its other files
    try:
        shorter.validate()
    except SkillError:
        return None
    return shorter if _protected(shorter) == _protected(skill) else None


def keeps(decision: Decision) -> bool:
    """The non-inferiority rule (module docstring) on a decision whose candidate is the skill
    with the text and whose incumbent is the skill without it."""
    return (not decision.accepted and decision.items_used > decision.excluded
            and decision.incumbent_score >= decision.candidate_score)


@dataclass
class Pruning:
    """The stage's result: its record (prune.json, summary `prune`) and, when a removal was
    kept, the skill before pruning (scored on test beside the pruned one)."""

    record: dict[str, Any]
    unpruned: Skill | None = None


async def prune_skill(run: RunContext, skill: Skill, tries: int) -> tuple[Skill, dict[str, Any]]:
    """Try the removals on `skill` (largest first, at most `tries` decisions) with the run's
    gate on validation; the shortest skill every kept removal leads to, and the record."""
    start, current, found = run.evaluator.new_rollouts, skill, units(skill)
    tried: list[dict[str, Any]] = []
    stopped = None
    for unit in found:
        if len(tried) >= tries:
            break
        shorter = without(current, unit.text)
        if shorter is None:  # went with a larger unit already, or not cleanly removable
            continue
        try:
            run.meter.check()
        except BudgetExceeded as exc:
            stopped = str(exc)
            break
        decision = await run.gate.decide(current, shorter, run.val_ids, run.evaluator)
        kept = keeps(decision)
        tried.append({"kind": unit.kind, "preview": " ".join(unit.text.split())[:100],
                      "tokens": unit.tokens,
                      "kept": kept, "score_with": decision.candidate_score,
                      "score_without": decision.incumbent_score,
                      "items": decision.items_used, "excluded": decision.excluded,
                      "reason": decision.reason})
        run.emit("prune_try", unit=unit.kind, tokens=unit.tokens, kept=kept,
                 score_with=decision.candidate_score, score_without=decision.incumbent_score)
        if kept:
            current = shorter
    record = {"from": skill.hash, "to": current.hash, "rule": getattr(run.gate, "name", None),
              "tokens": {"before": skill.tokens, "after": current.tokens},
              "units": len(found), "limit": tries, "tried": tried,
              "kept": sum(t["kept"] for t in tried),
              "refused": sum(not t["kept"] for t in tried),
              "new_evaluations": run.evaluator.new_rollouts - start, "stopped": stopped,
              "version": None, "parent": None}
    return current, record


async def prune_run(run: RunContext, tries: int) -> Pruning:
    """The stage on a run's best skill. A kept removal becomes a new version (marked `pruned`,
    with its `parent`), the best skill and best_skill.md; the record goes to prune.json. A
    resumed run that already pruned this best skill reads the record back instead of paying
    for the decisions again."""
    state, store = run.state, run.store
    entry = next((v for v in state.versions if v.get("number") == state.best.number), {})
    try:
        saved = store.read_json(PRUNE_FILE) if store.path(PRUNE_FILE).is_file() else None
    except ValueError:  # cut by a kill: pruned again, from the score cache
        saved = None
    if isinstance(saved, dict):  # what the checkpoint committed, else it is done again
        parent = saved.get("parent")
        if entry.get("pruned") and saved.get("version") == state.best.number \
                and isinstance(parent, int):
            return Pruning({**saved, "new_evaluations": 0, "resumed": True},
                           store.load_skill(parent, like=state.initial.skill))
        if saved.get("from") == state.best.skill.hash and not saved.get("kept") \
                and not saved.get("stopped"):
            return Pruning({**saved, "new_evaluations": 0, "resumed": True})
    best = state.best
    pruned, record = await prune_skill(run, best.skill, tries)
    unpruned = None
    if record["kept"]:
        number = len(state.versions)
        store.save_skill(number, pruned)
        state.versions.append({"number": number, "hash": pruned.hash, "step": state.global_step,
                               "accepted": True, "gated": True, "pruned": True,
                               "parent": best.number})
        state.best = Version(number, pruned, state.global_step)
        store.write_best(pruned)
        record.update(version=number, parent=best.number)
        unpruned = best.skill
    store.write_json(PRUNE_FILE, record)
    run.emit("prune", kept=record["kept"], refused=record["refused"],
             tokens_before=record["tokens"]["before"], tokens_after=record["tokens"]["after"],
             new_evaluations=record["new_evaluations"], stopped=record["stopped"])
    run.checkpoint()
    return Pruning(record, unpruned)
