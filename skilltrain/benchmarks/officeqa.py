"""OfficeQA: questions over a corpus of parsed documents, answered by the agent harness.

Payload: the question CSV, `officeqa.csv` (or the release's `officeqa_pro.csv` /
`officeqa_full.csv`; columns `uid` or `id`, `question`, `answer`, and optionally `source_files`:
the documents a question draws on, separated by `;`, `|` or new lines) and a folder of the parsed
documents, `documents/` (or the release's `treasury_bulletins_parsed/`; text, Markdown, JSON).
Each task attaches its source files (all documents when the column is absent) under
`documents/` in the agent's workspace. The agent works as in the paper's harness, with glob,
read and grep tools: its built-in set here is `glob`, `grep`, `read_file` and `python` (for
the tables grep cannot add up). Only a question's own sources are attached, so a large corpus
is not copied into every task. The scorer is `officeqa` (units and million/billion).

Turn limit: SPEC.md gives none for the paper, so `agent.max_turns` 20 is our choice: a search
over documents takes about three calls per lookup (glob, grep, read) and a question may need a
few lookups plus a check, which the general default of 8 cuts short. Both settings are this
benchmark's agent defaults (`Benchmark.agent`), used only where the user's config, `--max-turns`
or `--set agent.KEY=...` does not set the key.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from skilltrain.benchmarks.base import Benchmark, BenchmarkError, require
from skilltrain.benchmarks.paper import paper_overrides
from skilltrain.data import Task

NAME = "officeqa"
PAYLOAD = "officeqa.csv"
CSV_NAMES = (PAYLOAD, "officeqa_pro.csv", "officeqa_full.csv")
DOCS = "documents"
DOC_FOLDERS = (DOCS, "treasury_bulletins_parsed")
_SPLIT_RE = re.compile(r"[;|\n]")
MAX_TURNS = 20  # our choice, not the paper's (see the module docstring)

SKILL = """---
name: officeqa
description: Answer questions from a folder of parsed office documents.
---

# Questions over documents

The documents are under documents/. Find the passage that answers the question, then give the
answer after "FINAL:".
"""


def _documents(folder: Path) -> dict[str, Path]:
    """name and stem -> file, so a CSV may name a document with or without its suffix."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        found.setdefault(rel, path)
        found.setdefault(path.name, path)
        found.setdefault(path.stem, path)
    return found


def items(root: Path) -> dict[str, Task]:
    path = require(BENCHMARK, next((root / n for n in CSV_NAMES if (root / n).is_file()),
                                   root / PAYLOAD))
    folder = require(BENCHMARK, next((root / n for n in DOC_FOLDERS if (root / n).is_dir()),
                                     root / DOCS))
    docs = _documents(folder)
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchmarkError(f"{path}: cannot read as CSV ({exc})") from None
    found: dict[str, Task] = {}
    for n, row in enumerate(rows, 2):
        item_id = (row.get("uid") or row.get("id") or "").strip()
        question, answer = row.get("question"), row.get("answer")
        if not item_id or question is None or answer is None:
            raise BenchmarkError(f"{path}:{n}: expected columns uid (or id), question, answer")
        names = [s.strip() for s in _SPLIT_RE.split(row.get("source_files") or "") if s.strip()]
        chosen = sorted({docs[s] for s in names if s in docs}) if names else \
            sorted(set(docs.values()))
        unknown = [s for s in names if s not in docs]
        if unknown:
            raise BenchmarkError(f"{path}:{n}: source file {unknown[0]!r} is not in {folder}")
        files = {f"{DOCS}/{p.relative_to(folder).as_posix()}":
                 {"text": p.read_text(encoding="utf-8", errors="replace")} for p in chosen}
        text = (f"{question.strip()}\n\nThe documents are in the folder {DOCS}/ "
                f"({len(files)} file(s)).")
        found[item_id] = Task(id=item_id, input=text, answer=answer.strip(), type=NAME,
                              meta={"files": files})
    return found


BENCHMARK = Benchmark(
    name=NAME, description="OfficeQA: questions over parsed documents (agent harness)",
    source="https://huggingface.co/datasets/databricks/officeqa (gated: request access)",
    payload=f"{PAYLOAD} and the parsed documents ({DOCS}/)", skill=SKILL, scorer="officeqa",
    items=items, harness="agent", paper=paper_overrides({"harness": "agent"}),
    agent={"builtin": ["glob", "grep", "read_file", "python"], "max_turns": MAX_TURNS})
