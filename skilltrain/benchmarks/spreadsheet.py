"""SpreadsheetBench Verified: workbook edits checked cell by cell on several test cases.

Payload: `dataset.json` (a list of tasks with `id`, `instruction`, `answer_position`, e.g.
`'Sheet1'!D2:D9` or several ranges joined by commas, and optionally `instruction_type`) and a
`spreadsheet/<id>/` folder per task holding its cases as `<k>_<id>_input.xlsx` and
`<k>_<id>_answer.xlsx`. Each task attaches every case's input as `case<k>/input.xlsx` to the
agent's workspace; the agent runs code and saves `case<k>/output.xlsx`. Both of the paper's
code-harness settings: multi-turn, each run's output fed back (the default), and single-shot,
one reply whose program runs once with no output shown (`agent.single_shot: true`, or
`--set agent.single_shot=true`; harness/agent.py). The collector reads the answer cells of
each output; the scorer compares them with the answer workbooks' values rounded to two
decimals, reusing the spreadsheet suite's cell comparison: a case passes when all its cells
match, hard = all cases pass, soft = the fraction of cases that pass. Reference values are
read once at load time, so the answer workbooks never enter the workspace.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skilltrain.benchmarks.base import Benchmark, BenchmarkError, read_json, require
from skilltrain.benchmarks.paper import paper_overrides
from skilltrain.data import Task
from skilltrain.records import Rollout, Score
from skilltrain.suites.spreadsheet import CellScorer, _cell_value, _openpyxl

NAME = "spreadsheetbench"
PAYLOAD = "dataset.json"
FOLDER = "spreadsheet"
COLLECT = "skilltrain.benchmarks.spreadsheet:collect_cases"
_CASE_RE = re.compile(r"^(\d+)_(.+)_(input|answer)\.xlsx$")

SKILL = """---
name: spreadsheetbench
description: Edit Excel workbooks with Python and openpyxl.
---

# Spreadsheet tasks

For each case folder, load caseK/input.xlsx with openpyxl, make the change the instruction asks
for, and save it as caseK/output.xlsx.
"""


def answer_cells(position: str, default_sheet: str, wb: Any) -> list[str]:
    """`Sheet!A1` references for an answer position: comma-separated ranges, each with an
    optional (quoted) sheet name; no sheet means the answer workbook's first sheet."""
    from openpyxl.utils import get_column_letter, range_boundaries

    refs: list[str] = []
    for part in (p.strip() for p in position.split(",") if p.strip()):
        sheet, _, rng = part.rpartition("!")
        sheet = sheet.strip("'\"") or default_sheet
        if sheet not in wb.sheetnames:
            raise ValueError(f"answer_position {position!r}: no sheet {sheet!r}")
        lo_c, lo_r, hi_c, hi_r = range_boundaries(rng.replace("$", ""))
        for row in range(lo_r, (hi_r or lo_r) + 1):
            for col in range(lo_c, (hi_c or lo_c) + 1):
                refs.append(f"{sheet}!{get_column_letter(col)}{row}")
    return refs


def _cases(folder: Path, item_id: str) -> dict[int, dict[str, Path]]:
    cases: dict[int, dict[str, Path]] = {}
    for path in folder.glob("*.xlsx"):
        m = _CASE_RE.match(path.name)
        if m and m.group(2) == item_id:
            cases.setdefault(int(m.group(1)), {})[m.group(3)] = path
    return {k: v for k, v in sorted(cases.items()) if "input" in v and "answer" in v}


def make_task(row: Any, root: Path, where: str) -> Task:
    try:
        item_id, instruction = str(row["id"]), str(row["instruction"])
        position = str(row["answer_position"])
    except (KeyError, TypeError) as exc:
        raise BenchmarkError(f"{where}: expected objects with id, instruction and "
                             f"answer_position ({exc})") from None
    folder = require(BENCHMARK, root / FOLDER / item_id)
    cases = _cases(folder, item_id)
    if not cases:
        raise BenchmarkError(f"{folder}: no <k>_{item_id}_input.xlsx / _answer.xlsx pairs")
    files: dict[str, Any] = {}
    wants: list[dict[str, Any]] = []
    for k, pair in cases.items():
        try:
            wb = _openpyxl().load_workbook(pair["answer"], data_only=True)
            refs = answer_cells(position, wb.sheetnames[0], wb)
        except (ValueError, OSError, KeyError) as exc:
            raise BenchmarkError(f"{pair['answer']}: {exc}") from None
        wants.append({ref: _cell_value(wb[ref.partition("!")[0]][ref.partition("!")[2]].value)
                      for ref in refs})
        files[f"case{k}/input.xlsx"] = {"base64": base64.b64encode(
            pair["input"].read_bytes()).decode("ascii")}
    names = ", ".join(f"case{k}/" for k in cases)
    text = (f"{instruction}\n\nAnswer cells: {position}. Apply this to each case ({names}): "
            "read caseK/input.xlsx and save the result as caseK/output.xlsx.")
    return Task(id=item_id, input=text, answer={"cases": wants},
                type=str(row.get("instruction_type") or NAME),
                meta={"files": files, "collect": COLLECT})


def items(root: Path) -> dict[str, Task]:
    path = require(BENCHMARK, root / PAYLOAD)
    rows = read_json(path)
    if not isinstance(rows, list):
        raise BenchmarkError(f"{path}: expected a list of tasks")
    return {t.id: t for t in (make_task(row, root, str(path)) for row in rows)}


def collect_cases(task: Task, workspace: Path, final: str) -> str:
    """Each case's answer cells from its output workbook, as JSON (errors named per case)."""
    from skilltrain.suites.spreadsheet import collect_cells

    reports = []
    for k, want in enumerate(task.answer["cases"], 1):
        case = Task(id=task.id, input="", answer=list(want), meta={"output":
                                                                  f"case{k}/output.xlsx"})
        reports.append(json.loads(collect_cells(case, workspace, final)))
    return json.dumps({"cases": reports}, default=str)


@dataclass(frozen=True)
class CaseScorer:
    """hard = every case's cells match (rounded to `places`), soft = the fraction of cases."""

    places: int = 2

    def score(self, task: Task, rollout: Rollout) -> Score:
        cells = CellScorer(places=self.places)
        try:
            reports = json.loads(rollout.answer)["cases"]
        except (json.JSONDecodeError, TypeError, KeyError):
            return Score(hard=0.0, soft=0.0, feedback="no case report from the output "
                         "workbooks; this benchmark needs the agent harness")
        wants = task.answer["cases"]
        passed, notes = 0, []
        for k, want in enumerate(wants, 1):
            report = reports[k - 1] if k - 1 < len(reports) else {"error": "no report"}
            got = report.get("cells") or {}
            # a cell the answer leaves empty must stay empty (CellScorer calls empty wrong)
            filled = [r for r in got if got[r] not in (None, "")]
            stray = [r for r, v in want.items() if v in (None, "") and r in filled]
            want_set = {r: v for r, v in want.items() if v not in (None, "")}
            one = cells.score(Task(id=task.id, input="", answer=want_set),
                              rollout.model_copy(update={"answer": json.dumps(report)}))
            ok = one.hard == 1.0 and not stray
            passed += int(ok)
            if not ok:
                extra = f"; should be empty: {', '.join(stray[:3])}" if stray else ""
                notes.append(f"case{k}: {one.feedback}{extra}")
        soft = passed / len(wants) if wants else 1.0
        feedback = f"{passed}/{len(wants)} cases pass" + (f"; {'; '.join(notes)}"
                                                          if notes else "")
        return Score(hard=float(passed == len(wants)), soft=round(soft, 4), feedback=feedback)


BENCHMARK = Benchmark(
    name=NAME, description="SpreadsheetBench Verified: workbook edits, cell by cell (agent)",
    source="https://github.com/RUCKBReasoning/SpreadsheetBench",
    payload=f"{PAYLOAD} and the {FOLDER}/ folder of case workbooks", skill=SKILL,
    scorer=CaseScorer(), items=items, harness="agent",
    paper=paper_overrides({"harness": "agent"}))
