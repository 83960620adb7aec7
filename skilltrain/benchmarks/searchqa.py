"""SearchQA: a question and its retrieved snippets; answer in <answer> tags; SQuAD EM / F1.

Payload (our reading of the benchmark's rows, one JSON object a line): `searchqa.jsonl` with
`id`, `question`, `context` (a string, or a list of snippet strings joined by blank lines) and
`answer` (a string, or a list of acceptable strings). The context is cut to the paper's 6,000
characters, so a long page costs the same tokens as in the paper.
"""

from __future__ import annotations

import json
from pathlib import Path

from skilltrain.benchmarks.base import Benchmark, BenchmarkError, require
from skilltrain.benchmarks.paper import paper_overrides
from skilltrain.data import Task

NAME = "searchqa"
PAYLOAD = "searchqa.jsonl"
CONTEXT_CHARS = 6000

SKILL = """---
name: searchqa
description: Answer a trivia question from retrieved search snippets.
---

# Answering from search snippets

Read the snippets, answer the question, and put only the answer in <answer></answer> tags.
"""


def make_input(question: str, context: str) -> str:
    return (f"Question: {question}\n\nSearch results:\n{context[:CONTEXT_CHARS]}\n\n"
            "Give the answer in <answer></answer> tags.")


def items(root: Path) -> dict[str, Task]:
    path = require(BENCHMARK, root / PAYLOAD)
    found: dict[str, Task] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            item_id, question, answer = str(row["id"]), str(row["question"]), row["answer"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BenchmarkError(f"{path}:{n}: expected a JSON object with id, question, "
                                 f"context and answer ({exc})") from None
        context = row.get("context", "")
        if isinstance(context, list):
            context = "\n\n".join(str(c) for c in context)
        found[item_id] = Task(id=item_id, input=make_input(question, str(context)),
                              answer=answer, type=NAME)
    return found


BENCHMARK = Benchmark(
    name=NAME, description="SearchQA: questions over search snippets (EM / token F1)",
    source="https://github.com/nyu-dl/dl4ir-searchQA", payload=PAYLOAD, skill=SKILL,
    scorer="squad", items=items, paper=paper_overrides())
