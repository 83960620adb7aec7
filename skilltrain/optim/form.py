"""The answer-form candidate: the model found the right answer but wrote it in the wrong form.

Small targets often get the content right inside a sentence ("The expression 4 + 5 + 5 is equal to
14.") where the grader wants "14". That failure needs no model to see: the reference answer
appears inside the answer given. A weak optimizer words the fix vaguely ("do not add context"),
which a 0.5B target ignores (measured on gym-arithmetic: such rules screened at 0 of 15 items),
so when most of a step's failures are of this kind the engine proposes one explicit instruction
about the form, with the kind of answer read off the train references (measured with the 0.5B
target on 30 test items: gym-arithmetic 0.00 -> 0.37, house-number 0.00 -> 0.87). It is a
candidate like any other: screened on the batch, gated on validation, shown in the lineage,
remembered when rejected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from skilltrain.data import Task
from skilltrain.optim.checks import display_answer
from skilltrain.records import Rollout
from skilltrain.skill import Edit, Skill

HEADING = "## Answer format"
_LABELS = 8  # at most this many distinct answers in train make a label set
_LABEL_CHARS = 40


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def holds_reference(task: Task, rollout: Rollout) -> bool:
    """The answer given contains the reference answer, with more text around it."""
    ref, got = _norm(display_answer(task.answer)), _norm(rollout.answer or "")
    if not ref or len(got) <= len(ref):
        return False
    if re.fullmatch(r"[\w.,:/+-]+", ref):  # a token: whole-token match
        return re.search(rf"(?<![\w.]){re.escape(ref)}(?![\w]|\.\d)", got) is not None
    return ref in got


def answer_kind(references: Sequence[str]) -> str:
    """What every reference answer is, in words, when the references say so plainly.

    Concrete values are never shown: asked to answer "like `14`, `3`, `60`", the 0.5B target
    answered 14 to most questions (measured: 0.03 on gym-arithmetic, against 0.37 with the
    kind in words). A small closed set of answers (a label set) is listed: that is the form."""
    refs = [r.strip() for r in references if r.strip()]
    if not refs:
        return ""
    if all(re.fullmatch(r"-?\d+", r) for r in refs):
        return "a whole number written in digits (a minus sign if it is negative)"
    if all(re.fullmatch(r"-?\d+(\.\d+)?", r) for r in refs):
        return "a number written in digits"
    labels = sorted(set(refs))
    if len(labels) <= _LABELS and len(refs) >= 2 * len(labels) and \
            all(len(x) <= _LABEL_CHARS and "\n" not in x for x in labels):
        return "exactly one of: " + ", ".join(labels)
    return ""


def form_edit(skill: Skill, failures: Sequence[tuple[Task, Rollout]], train: Sequence[Task],
              *, min_rows: int = 3, min_share: float = 0.5) -> Edit | None:
    """An append stating the answer's form, or None when form is not what fails.

    Needs at least `min_rows` failures holding their reference and that being `min_share` of
    all failures; a skill that already has the section gets none (the gate said no, or it
    landed: either way another copy would not help). What kind of answer is wanted is read
    off the train split's references (`answer_kind`)."""
    if HEADING.casefold() in skill.text.casefold():
        return None
    wrapped = [(t, r) for t, r in failures if holds_reference(t, r)]
    if len(wrapped) < min_rows or len(wrapped) < min_share * len(failures):
        return None
    kind = answer_kind([display_answer(t.answer) for t in train])
    content = (f"{HEADING}\n\nReply with only the final answer{', ' + kind if kind else ''}, "
               "nothing else: no sentence, no explanation, no restated question.")
    return Edit(op="append", target="", content=content, source="failure", support=len(wrapped),
                rationale=f"{len(wrapped)} of {len(failures)} failing answers hold the correct "
                          "answer inside other text")
