"""`skilltrain init`: a small project that trains at once with the embedded models.

The task is one a 0.5B model half does and a skill can finish: it adds two small numbers
correctly, but tends to wrap the sum in a sentence, and the exact scorer wants the bare number.
On the house-number suite, whose answers are bare numbers too, the README's measurement has the
embedded 0.5B target at 0.00 with its starting skill and 0.90 with a skill that states the
format, so a short run has a rule to find.
Two phrasings ("What is a + b?", "Add a and b.") are two task types, so every split holds both
and the report breaks scores down by them.

Paths in run.yaml are relative to the folder skilltrain runs in (as every config's are: a run
folder's config.yaml is read the same way on resume), so the project is run from its own folder:
`cd DIR && skilltrain train -c run.yaml`, as the command prints.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

# (a, b) of each task, fixed so every init writes the same project and a run can be compared
PAIRS = ((17, 25), (8, 34), (46, 13), (29, 29), (5, 61), (38, 47), (12, 9), (73, 18),
         (24, 56), (9, 9), (64, 27), (31, 15), (15, 48), (52, 39), (7, 26), (81, 11),
         (36, 36), (19, 44), (27, 8), (45, 45), (58, 23), (13, 67), (6, 79), (40, 22))

SKILL = """\
---
name: add-numbers
description: Adds two whole numbers given in a short question. Use for questions such as \
"What is 17 + 25?" or "Add 17 and 25."
---

# Adding numbers

Read the two numbers in the question and add them.
"""

RUN_YAML = """\
# A skilltrain run, written by `skilltrain init`. Run it from this folder:
#   skilltrain train -c run.yaml
# Paths here are relative to the folder you run skilltrain from, so run it here.
# `skilltrain config -c run.yaml` prints every setting, defaults included, each explained.

data:
  path: tasks.jsonl        # the tasks: one JSON object a line with id, input, answer, type
  split: [0.5, 0.25, 0.25] # train / validation (the gate) / test shares: 12 / 6 / 6 of 24 tasks

skill: SKILL.md            # the starting skill; training never edits this file

scorer: exact              # an answer counts when it equals the reference (spaces trimmed)

target:
  model: local:0.5b        # the frozen model that does the tasks: embedded, no key, no internet

optimizer:
  model: local:1.5b        # the model that reads scored answers and proposes skill edits

train:
  epochs: 1                # passes over the train split
  batch_size: 6            # train tasks per step: 12 train tasks make 2 steps, a few minutes

seed: 0                    # seed of batches and samples: the same seed repeats a run

# out: runs/first          # run folder; unset, each run gets runs/run-DATE-TIME
"""

README = """\
# A skilltrain project

Written by `skilltrain init`:

- `tasks.jsonl`: {n} tasks, one JSON object a line (`id`, `input`, `answer`, `type`). Put your
  own tasks here, in the same shape.
- `SKILL.md`: the starting skill, in Agent Skills format. `skilltrain lint SKILL.md` checks it.
- `run.yaml`: the run's settings, each one commented.

Run it from this folder:

```bash
skilltrain lint SKILL.md
skilltrain train -c run.yaml
```

It uses the two embedded models (Qwen2.5-Coder 0.5B as the target, 1.5B as the optimizer),
which `pip install 'skilltrain[demo]'` installs; no API key and no internet are needed.
Training ends with a before/after table (validation and test scores of the starting skill and
of the best one) and the path of the trained skill. Everything lands in the run folder
(`runs/run-DATE-TIME/`): `best_skill.md` (the trained skill), `summary.json` (the scores),
`events.jsonl` (what happened, step by step) and `config.yaml` (the settings it ran with).
`skilltrain report runs/run-DATE-TIME` writes `report.html` beside them.

To train for another model, set `target.model` and `optimizer.model` in `run.yaml` (for
example `openai:gpt-4o-mini`, with `OPENAI_API_KEY` set).
"""

FILES = ("tasks.jsonl", "SKILL.md", "run.yaml", "README.md")


class ScaffoldError(ValueError):
    """A project that cannot be written as asked; the message names the path."""


def tasks() -> list[dict[str, str]]:
    """The project's tasks: two phrasings of adding two numbers, answered with the bare sum."""
    rows = []
    for i, (a, b) in enumerate(PAIRS):
        plus = i % 2 == 0
        rows.append({"id": f"add-{i + 1:02d}",
                     "input": f"What is {a} + {b}?" if plus else f"Add {a} and {b}.",
                     "answer": str(a + b), "type": "plus" if plus else "add"})
    return rows


def project_files() -> dict[str, str]:
    """File name -> content of a new project."""
    rows = tasks()
    return {"tasks.jsonl": "".join(json.dumps(row) + "\n" for row in rows), "SKILL.md": SKILL,
            "run.yaml": RUN_YAML, "README.md": README.format(n=len(rows))}


def write_project(folder: str | Path, force: bool = False) -> list[Path]:
    """Write a new project into `folder` (made if missing) and return the files written.
    Refuses, writing nothing, when any of them exists, unless `force`."""
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ScaffoldError(f"{root}: exists and is not a folder")
    paths = [root / name for name in FILES]
    taken = [p for p in paths if p.exists() or p.is_symlink()]
    if taken and not force:
        raise ScaffoldError(f"{', '.join(map(str, taken))}: already exist"
                            f"{'s' if len(taken) == 1 else ''}; init never overwrites a file "
                            "(--force replaces them)")
    bad = [p for p in taken if p.is_dir()]
    if bad:
        raise ScaffoldError(f"{bad[0]}: is a folder; init writes a file there")
    written: list[Path] = []
    try:
        for name, text in project_files().items():
            path = root / name
            if path.is_symlink():  # --force replaces the link itself, never what it points at
                path.unlink()
            root.mkdir(parents=True, exist_ok=True)
            with open(path, "w" if force else "x", encoding="utf-8") as fh:
                fh.write(text)
            written.append(path)
    except OSError as exc:
        for path in written if not taken else []:  # a failed fresh init leaves nothing
            with contextlib.suppress(OSError):
                path.unlink()
        raise ScaffoldError(f"{root}: cannot write the project ({exc.strerror})") from None
    return written
