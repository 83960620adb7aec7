"""SearchQA: a question and its retrieved snippets; answer in <answer> tags; SQuAD EM / F1.

Payload (one JSON object a line): `searchqa.jsonl` with `id`, `question`, `answer` (a string,
or a list of acceptable strings) and the retrieved text in one of three forms:

- `context`: a string, or a list of snippet strings (our form);
- `search_results` as a list of objects with `snippet` and optionally `title` (the form of the
  dataset's published JSON files);
- `search_results` as an object of parallel lists `snippets` and `titles` (the Hugging Face
  `search_qa` layout, which also has `urls` and `related_links`, unused here).

`context` wins when present. Each snippet follows its title on its own line, results apart by
blank lines; empty (null) snippets are dropped. A row without `id` is an error (the Hugging
Face rows have none: give each an id when exporting them). The context is cut to the paper's
6,000 characters, so a long page costs the same tokens as in the paper.
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


def _result(title: object, snippet: object) -> str:
    head = str(title).strip() if title not in (None, "") else ""
    return f"{head}\n{str(snippet).strip()}" if head else str(snippet).strip()


def search_context(results: object, where: str) -> str:
    """The text of `search_results` in either published form (module docstring)."""
    if isinstance(results, dict):
        snippets, titles = results.get("snippets"), results.get("titles") or []
        if not isinstance(snippets, list) or not isinstance(titles, list):
            raise BenchmarkError(f"{where}: search_results: expected lists 'snippets' and "
                                 "'titles'")
        pairs = [(titles[i] if i < len(titles) else None, s) for i, s in enumerate(snippets)]
    elif isinstance(results, list):
        if not all(isinstance(r, dict) for r in results):
            raise BenchmarkError(f"{where}: search_results: expected objects with 'snippet' "
                                 "(and 'title')")
        pairs = [(r.get("title"), r.get("snippet")) for r in results]
    else:
        raise BenchmarkError(f"{where}: search_results: expected a list of results or an "
                             "object with 'snippets' and 'titles' lists")
    return "\n\n".join(_result(t, s) for t, s in pairs if s not in (None, ""))


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
                                 f"context (or search_results) and answer ({exc})") from None
        context = row.get("context")
        if context is None:
            context = search_context(row.get("search_results", []), f"{path}:{n}")
        if isinstance(context, list):
            context = "\n\n".join(str(c) for c in context)
        found[item_id] = Task(id=item_id, input=make_input(question, str(context)),
                              answer=answer, type=NAME)
    return found


BENCHMARK = Benchmark(
    name=NAME, description="SearchQA: questions over search snippets (EM / token F1)",
    source="https://github.com/nyu-dl/dl4ir-searchQA", payload=PAYLOAD, skill=SKILL,
    scorer="squad", items=items, paper=paper_overrides())
