"""DocVQA: a question about a document page, sent with the page image; ANLS.

Payload: the annotation files of the DocVQA single-page task (`*.json` with a top-level `data`
list, e.g. `train_v1.0_withQT.json`, `val_v1.0_withQT.json`; items with `questionId`,
`question`, `image`, a path relative to the data folder such as `documents/xyz.png`, and
`answers`) and the page images they name. Annotations without answers (the test set's) are
skipped: they cannot be scored. The image goes to the target as an image part of the chat
message (meta["images"], read at rollout time by the chat harness), so the target must accept
images. The scorer is `anls` (threshold 0.5; hard = ANLS >= 0.999, see bench_scorers.py).
"""

from __future__ import annotations

from pathlib import Path

from skilltrain.benchmarks.base import Benchmark, BenchmarkError, read_json
from skilltrain.benchmarks.paper import paper_overrides
from skilltrain.data import Task

NAME = "docvqa"

SKILL = """---
name: docvqa
description: Answer questions about a scanned document page.
---

# Document questions

Read the page image and answer with the exact text from the document, as short as possible.
"""


def items(root: Path) -> dict[str, Task]:
    found: dict[str, Task] = {}
    files = [p for p in sorted(root.glob("*.json")) if p.name != "split_manifest.json"]
    for path in files:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            continue  # not an annotation file
        for row in data["data"]:
            try:
                item_id, question = str(row["questionId"]), str(row["question"])
                image = root / str(row["image"])
            except (KeyError, TypeError) as exc:
                raise BenchmarkError(f"{path}: expected items with questionId, question and "
                                     f"image ({exc})") from None
            answers = row.get("answers")
            if not answers:
                continue
            if not image.is_file():
                raise BENCHMARK.missing(image)
            text = f"{question}\n\nAnswer from the document page in the image."
            found[item_id] = Task(id=item_id, input=text, answer=[str(a) for a in answers],
                                  type=NAME, meta={"images": [str(image.resolve())]})
    if not found:
        raise BenchmarkError(f"benchmark {NAME}: no annotation file (JSON with a 'data' list "
                             f"of answered questions) in {root}; get {BENCHMARK.payload} from "
                             f"{BENCHMARK.source} and put it there")
    return found


BENCHMARK = Benchmark(
    name=NAME, description="DocVQA: questions about page images (ANLS)",
    source="https://rrc.cvc.uab.es/?ch=17 (registration required)",
    payload="the annotation JSON files and the page images (documents/)", skill=SKILL,
    scorer="anls", items=items, paper=paper_overrides())
