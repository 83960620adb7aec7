"""LiveMathematicianBench: monthly five-choice questions; the chosen label must match.

Payload: the monthly QA files, as released (`data/YYYYMM/qa_YYYYMM_final.json`) or as a `qa/`
folder of JSON files; each a list of items. An item holds its question either at the top level
or under `mcq`: `question`, `choices` (or `options`: five strings, or an object label -> text)
and `answer` (or `correct_answer`: the correct choice's text, its label, or its 0-based index).
Its id is `id` when present, else the month and `no` (`202511-7`). The choices are shuffled per
item by a hash of the item id, so the correct label is not always where the source put it and
the order is the same on every run and machine.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from skilltrain.benchmarks.base import Benchmark, BenchmarkError, read_json
from skilltrain.benchmarks.paper import paper_overrides
from skilltrain.data import Task

NAME = "livemath"
FOLDER = "qa"
LABELS = "ABCDE"

SKILL = """---
name: livemath
description: Answer five-choice research-level mathematics questions.
---

# Multiple-choice mathematics

Work the problem, then end with one line "Answer: X", X the letter of the chosen option.
"""


def shuffled(item_id: str, choices: Sequence[str]) -> list[int]:
    """The order the choices are shown in: a permutation seeded by the sha256 of the id."""
    seed = int.from_bytes(hashlib.sha256(item_id.encode("utf-8")).digest()[:8], "big")
    order = list(range(len(choices)))
    random.Random(seed).shuffle(order)
    return order


def _month(path: Path) -> str:
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return digits or path.stem


def _choices(raw: Any) -> tuple[list[str], list[str]]:
    """(texts, source labels): a list is labelled A-E, an object keeps its own labels."""
    if isinstance(raw, Mapping):
        labels = sorted(str(k) for k in raw)
        return [str(raw[k]) for k in sorted(raw, key=str)], labels
    texts = [str(c) for c in list(raw)]
    return texts, list(LABELS[: len(texts)])


def make_task(row: Any, where: str, month: str = "") -> Task:
    try:
        mcq = row.get("mcq") if isinstance(row.get("mcq"), Mapping) else row
        item_id = str(row["id"]) if "id" in row else f"{month}-{row['no']}"
        question = str(mcq["question"])
        choices, labels = _choices(mcq["choices"] if "choices" in mcq else mcq["options"])
        answer = mcq["answer"] if "answer" in mcq else mcq["correct_answer"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise BenchmarkError(f"{where}: expected items with id (or no), question, choices and "
                             f"answer, at the top or under mcq ({exc})") from None
    if len(choices) != len(LABELS):
        raise BenchmarkError(f"{where}: item {item_id}: expected 5 choices, got {len(choices)}")
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(choices):
        correct = answer
    elif str(answer) in choices:
        correct = choices.index(str(answer))
    elif str(answer).strip().strip("()").upper() in [x.upper() for x in labels]:
        correct = [x.upper() for x in labels].index(str(answer).strip().strip("()").upper())
    else:
        raise BenchmarkError(f"{where}: item {item_id}: answer {answer!r} is not one of its "
                             "choices, labels or 0-based indexes")
    order = shuffled(item_id, choices)
    shown = "\n".join(f"{LABELS[i]}) {choices[k]}" for i, k in enumerate(order))
    text = f"{question}\n\n{shown}\n\nEnd with a line 'Answer: X' (X one of A-E)."
    return Task(id=item_id, input=text, answer=LABELS[order.index(correct)], type=NAME)


def items(root: Path) -> dict[str, Task]:
    files = sorted({*root.glob(f"{FOLDER}/*.json"), *root.rglob("qa_*.json")})
    if not files:
        raise BENCHMARK.missing(root / "data" / "YYYYMM" / "qa_YYYYMM_final.json")
    found: dict[str, Task] = {}
    for path in files:
        rows = read_json(path)
        if not isinstance(rows, list):
            raise BenchmarkError(f"{path}: expected a list of questions")
        for row in rows:
            task = make_task(row, str(path), _month(path))
            if task.id in found:
                raise BenchmarkError(f"{path}: item id {task.id!r} appears twice")
            found[task.id] = task
    return found


BENCHMARK = Benchmark(
    name=NAME, description="LiveMathematicianBench: five-choice maths (label match)",
    source="https://huggingface.co/datasets/LiveMathematicianBench/LiveMathematicianBench",
    payload="the monthly QA files (data/YYYYMM/qa_YYYYMM_final.json)", skill=SKILL, scorer="choice",
    items=items, paper=paper_overrides())
