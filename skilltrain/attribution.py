"""Edit attribution: which accepted edits of the best skill fixed, and which broke, which items.

A user deciding whether to ship a skill asks which of its edits earned the gain. The answer is
measured, not guessed: for each accepted version on the best skill's lineage, two skills are
compared item by item on the validation and test splits, and the items whose outcome rose
(fixed) or fell (broke) are listed with the mean difference.

- **leave-one-out** (preferred): the best skill against the best skill with that version's
  change taken out. Possible when the change can be undone cleanly: every text it added is
  still in the best skill verbatim, exactly once, at a line start (so later edits did not
  rewrite it). This measures what the edit contributes to the skill that is shipped.
- **version** (fallback): the version against its parent, i.e. what the step did when it was
  accepted. Used when a later edit rewrote the text, so there is nothing clean to remove.

Outcomes come through the run's evaluator, so every (skill, item) already scored (the gate's
validation, the end-of-run test scores) is read from the score cache; only the skills without a
change cost new evaluations, and their number is reported. Infrastructure failures drop the
item from both sides (counted as `excluded`), never counted as broken.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from skilltrain.models.meter import BudgetExceeded
from skilltrain.sealed import Look
from skilltrain.skill import Skill, SkillError

if TYPE_CHECKING:
    from skilltrain.run import RunContext

EPS = 1e-9


class Outcomes(Protocol):
    """The evaluator as attribution uses it: per-item outcomes, and how many were new."""

    new_rollouts: int

    async def __call__(self, skill: Skill, task_ids: Sequence[str], sample: int = 0
                       ) -> dict[str, float | None]: ...


@dataclass(frozen=True)
class Change:
    """One accepted version on the best skill's lineage, with the skill it was built on."""

    version: int
    parent: Skill
    child: Skill
    step: str | None = None


def lineage(versions: Sequence[Mapping[str, Any]], best: int) -> list[tuple[int, int]]:
    """(version, parent) for each version the best one descends from, oldest first. A pruned
    version is skipped: it removed text, it made no edit of its own to attribute."""
    by_number = {v.get("number"): v for v in versions}
    chain: list[tuple[int, int]] = []
    number = best
    while number in by_number and number > 0 and len(chain) <= len(versions):
        parent = by_number[number].get("parent", number - 1)
        if not isinstance(parent, int) or parent >= number:
            break
        if not by_number[number].get("pruned"):
            chain.append((number, parent))
        number = parent
    return chain[::-1]


def _only(text: str, needle: str) -> int | None:
    """Where `needle` occurs in `text` at a line start, when it occurs there exactly once."""
    hits, at = [], text.find(needle)
    while at != -1 and len(hits) < 2:
        if at == 0 or text[at - 1] == "\n":
            hits.append(at)
        at = text.find(needle, at + 1)
    return hits[0] if len(hits) == 1 else None


def without_change(best: Skill, parent: Skill, child: Skill) -> Skill | None:
    """The best skill with the change parent -> child undone, or None when that cannot be done
    cleanly (see the module docstring). Changes to blank lines alone are left as they are."""
    a = parent.text.splitlines(keepends=True)
    b = child.text.splitlines(keepends=True)
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    text, spans = best.text, []
    for tag, i1, i2, j1, j2 in ops:
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "equal" or not (removed.strip() or added.strip()):
            continue
        if added.strip():
            at = _only(text, added)
            if at is None:
                return None
            spans.append((at, at + len(added), removed))
            continue
        before, after = (b[j1 - 1] if j1 > 0 else ""), (b[j2] if j2 < len(b) else "")
        if not (before + after).strip():
            return None
        at = _only(text, before + added + after)  # a deletion: put it back between neighbours
        if at is None:
            return None
        spans.append((at + len(before), at + len(before) + len(added), removed))
    if not spans:
        return None
    spans.sort()
    if any(s2 < e1 for (_, e1, _), (s2, _, _) in zip(spans, spans[1:])):
        return None
    for start, end, removed in reversed(spans):
        text = text[:start] + removed + text[end:]
    undone = dataclasses.replace(best, text=text)  # a package keeps its other files
    try:
        undone.validate()
    except SkillError:
        return None
    return undone if undone.hash != best.hash else None


def _preview(parent: Skill, child: Skill, limit: int = 100) -> str:
    """The change in one line: its first added (else removed) line of text."""
    diff = difflib.unified_diff(parent.text.splitlines(), child.text.splitlines(), n=0,
                                lineterm="")
    lines = [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    shown = next((ln for ln in lines if ln.startswith("+") and ln[1:].strip()),
                 next((ln for ln in lines if ln[1:].strip()), ""))
    one = " ".join(shown.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


async def compare_items(evaluate: Outcomes, with_: Skill, without: Skill,
                        ids: Sequence[str]) -> dict[str, Any]:
    """Items the change fixed (outcome higher with it) and broke (lower), and the mean
    difference with minus without over the items both sides scored."""
    a = await evaluate(with_, ids)
    b = await evaluate(without, ids)
    fixed, broke, diffs, excluded = [], [], [], 0
    for t in ids:
        x, y = a.get(t), b.get(t)
        if x is None or y is None:
            excluded += 1
            continue
        diffs.append(x - y)
        if x - y > EPS:
            fixed.append(t)
        elif x - y < -EPS:
            broke.append(t)
    return {"delta": round(sum(diffs) / len(diffs), 4) if diffs else None, "n": len(diffs),
            "excluded": excluded, "fixed": fixed, "broke": broke}


async def attribute(evaluate: Outcomes, changes: Sequence[Change], best: Skill,
                    splits: Mapping[str, Sequence[str]], *, look: Look | None = None,
                    check: Callable[[], None] | None = None) -> dict[str, Any]:
    """Attribution of each change in `changes` on each split in `splits` (name -> item ids).

    `check` runs before each change (the budget); a BudgetExceeded ends the attribution with
    what it has, `stopped` saying why. Skills scored on a split named "test" are added to
    `look`, the end-of-run look at test."""
    start = evaluate.new_rollouts
    entries: list[dict[str, Any]] = []
    stopped = None
    for change in changes:
        try:
            if check is not None:
                check()
        except BudgetExceeded as exc:
            stopped = str(exc)
            break
        undone = without_change(best, change.parent, change.child)
        if undone is not None:
            mode, with_, without = "leave_one_out", best, undone
        else:
            mode, with_, without = "version", change.child, change.parent
        entry: dict[str, Any] = {"version": change.version, "step": change.step, "mode": mode,
                                 "change": _preview(change.parent, change.child),
                                 "with": with_.hash, "without": without.hash}
        for name, ids in splits.items():
            if not ids:
                continue
            entry[name] = await compare_items(evaluate, with_, without, ids)
            if name == "test" and look is not None:
                look.add(with_.hash, "best" if with_ is best else f"v{change.version:04d}")
                look.add(without.hash, f"attribution: without v{change.version:04d}"
                         if mode == "leave_one_out" else f"v{change.version:04d} parent")
        entries.append(entry)
    return {"skill": best.hash, "entries": entries, "stopped": stopped,
            "new_evaluations": evaluate.new_rollouts - start}


async def attribute_run(run: RunContext, look: Look | None = None) -> dict[str, Any]:
    """`attribute` for a run's best skill, over its lineage, on validation and test."""
    state = run.state
    steps = {r.version: r.id for r in state.history if r.version is not None}
    like = state.initial.skill  # a package's budgets and switches, which its folder lacks

    def load(number: int) -> Skill:
        return run.store.load_skill(number, like=like)

    changes = [Change(number, load(parent), load(number), steps.get(number))
               for number, parent in lineage(state.versions, state.best.number)]
    splits = {"val": list(run.val_ids), "test": [t.id for t in run.splits.test]}
    return await attribute(run.evaluator, changes, state.best.skill, splits, look=look,
                           check=run.meter.check)
