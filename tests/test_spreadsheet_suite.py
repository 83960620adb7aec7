"""The generated spreadsheet suite: tasks, the cell collector, the scorer, and an agent run."""

from __future__ import annotations

import base64
import io
import json
import time
from collections import Counter
from pathlib import Path

import pytest

openpyxl = pytest.importorskip("openpyxl")

from agents.tool_server import solve_once  # noqa: E402

from skilltrain.data import Task  # noqa: E402
from skilltrain.harness.agent import attach_files  # noqa: E402
from skilltrain.records import Rollout  # noqa: E402
from skilltrain.skill import Skill  # noqa: E402
from skilltrain.suites import spreadsheet  # noqa: E402
from skilltrain.suites.spreadsheet import CellScorer, build, collect_cells  # noqa: E402

SOLUTIONS = {
    "commission": (
        "import openpyxl\n"
        "wb = openpyxl.load_workbook('input.xlsx'); ws = wb['Sales']\n"
        "ws.cell(row=1, column=5, value='Commission')\n"
        "for r in range(2, ws.max_row + 1):\n"
        "    rev = ws.cell(row=r, column=3).value * ws.cell(row=r, column=4).value\n"
        "    ws.cell(row=r, column=5, value=round(rev * 0.04 + (150 if rev >= 5000 else 0), 2))\n"
        "wb.save('output.xlsx'); print('saved')\n"
    ),
    "net-sales": (
        "import openpyxl\n"
        "wb = openpyxl.load_workbook('input.xlsx'); o = wb['Orders']; s = wb['Summary']\n"
        "tot = {}\n"
        "for r in range(2, o.max_row + 1):\n"
        "    reg, amt, st = (o.cell(row=r, column=c).value for c in (2, 3, 4))\n"
        "    tot[reg] = tot.get(reg, 0) + {'paid': amt, 'refunded': -amt}.get(st, 0)\n"
        "for r in range(2, s.max_row + 1):\n"
        "    s.cell(row=r, column=2, value=round(tot.get(s.cell(row=r, column=1).value, 0), 2))\n"
        "wb.save('output.xlsx'); print('saved')\n"
    ),
    "late-fee": (
        "import openpyxl\n"
        "wb = openpyxl.load_workbook('input.xlsx'); ws = wb['Invoices']\n"
        "for r in range(2, ws.max_row + 1):\n"
        "    amt, days = ws.cell(row=r, column=3).value, ws.cell(row=r, column=4).value\n"
        "    fee = 0 if days <= 14 else max(25, amt * 0.03)\n"
        "    ws.cell(row=r, column=5, value=round(fee, 2))\n"
        "wb.save('output.xlsx'); print('saved')\n"
    ),
}


def workbook(task: Task) -> openpyxl.Workbook:
    data = base64.b64decode(task.meta["files"]["input.xlsx"]["base64"])
    return openpyxl.load_workbook(io.BytesIO(data))


def test_splits_are_deterministic_balanced_and_disjoint() -> None:
    first = build(0)
    time.sleep(1.1)  # openpyxl stamps the save time into the file; it must not leak in
    again = build(0)
    assert first == again  # ids, inputs, answers and the workbooks' bytes
    assert [t.answer for t in build(1).test] != [t.answer for t in first.test]
    assert (len(first.train), len(first.val), len(first.test)) == (24, 12, 12)
    assert Counter(t.type for t in first.test) == {k: 4 for k in spreadsheet.KINDS}
    assert len({t.id for t in first.all()}) == 48
    task = first.test[0]
    assert task.meta["collect"] == spreadsheet.COLLECT and task.meta["output"] == "output.xlsx"
    json.dumps({"answer": task.answer, "meta": task.meta})  # tasks stay plain JSON
    assert "input.xlsx" in task.input and "output.xlsx" in task.input
    assert "house rule" in task.input


def test_inputs_hold_the_data_the_answers_come_from() -> None:
    for task in build(0).test:
        wb = workbook(task)
        for ref in task.answer:
            sheet, _, cell = ref.partition("!")
            assert sheet in wb.sheetnames
            assert wb[sheet][cell].value is None  # the answer cells start empty
        assert all(round(v, 2) == v for v in task.answer.values())


def solve(task: Task, tmp_path: Path, code: str) -> Rollout:
    from skilltrain.harness.sandbox import Sandbox

    with Sandbox() as box:
        attach_files(box.workspace, task.meta["files"])
        result = box.run_python(code)
        assert result.ok, result.stderr
        answer = collect_cells(task, box.workspace, "done")
    return Rollout(task_id=task.id, skill_hash="h", answer=answer)


@pytest.mark.parametrize("kind", spreadsheet.KINDS)
def test_a_correct_program_scores_full_marks(kind: str, tmp_path: Path) -> None:
    task = next(t for t in build(0).val if t.type == kind)
    score = CellScorer().score(task, solve(task, tmp_path, SOLUTIONS[kind]))
    assert (score.hard, score.soft) == (1.0, 1.0), score.feedback


def test_feedback_names_wrong_cells_but_not_the_reference(tmp_path: Path) -> None:
    task = next(t for t in build(0).val if t.type == "commission")
    refs = list(task.answer)
    forgot_bonus = SOLUTIONS["commission"].replace("150 if rev >= 5000 else 0", "0")
    formulas = SOLUTIONS["commission"].replace(
        "value=round(rev * 0.04 + (150 if rev >= 5000 else 0), 2)", "value=f'=C{r}*D{r}*0.04'")
    scorer = CellScorer()
    for code in (forgot_bonus, formulas):
        score = scorer.score(task, solve(task, tmp_path, code))
        for value in task.answer.values():
            assert f"{value:g}" not in score.feedback and str(value) not in score.feedback
    score = scorer.score(task, solve(task, tmp_path, formulas))
    assert score.hard == 0.0 and score.soft == 0.0
    assert refs[0] in score.feedback and "formula" in score.feedback
    partial = Rollout(task_id=task.id, skill_hash="h", answer=json.dumps(
        {"file": "output.xlsx", "cells": {**task.answer, refs[0]: task.answer[refs[0]] + 1,
                                          refs[1]: None}}))
    score = scorer.score(task, partial)
    assert score.hard == 0.0 and score.soft == round((len(refs) - 2) / len(refs), 4)
    assert f"{len(refs) - 2}/{len(refs)} answer cells right" in score.feedback
    assert f"{refs[0]} (got" in score.feedback and "too high" in score.feedback
    assert f"{refs[1]} (empty)" in score.feedback
    rounding = Rollout(task_id=task.id, skill_hash="h", answer=json.dumps(
        {"cells": {k: v + 0.001 for k, v in task.answer.items()}}))
    assert scorer.score(task, rounding).hard == 1.0  # compared at 2 decimals


def test_missing_or_broken_outputs_and_chat_answers(tmp_path: Path) -> None:
    task = build(0).test[0]
    missing = json.loads(collect_cells(task, tmp_path, ""))
    assert missing == {"file": "output.xlsx", "error": "output.xlsx was not written"}
    (tmp_path / "output.xlsx").write_text("not a workbook")
    broken = json.loads(collect_cells(task, tmp_path, ""))
    assert "could not be opened" in broken["error"]
    scorer = CellScorer()
    for answer in (json.dumps(missing), json.dumps(broken)):
        score = scorer.score(task, Rollout(task_id=task.id, skill_hash="h", answer=answer))
        assert score.hard == 0.0 and score.feedback
    chat = scorer.score(task, Rollout(task_id=task.id, skill_hash="h", answer="42"))
    assert chat.hard == 0.0 and "agent or command harness" in chat.feedback


def test_the_agent_harness_solves_a_task_end_to_end() -> None:
    task = next(t for t in build(0).train if t.type == "late-fee")

    rollout = solve_once(SOLUTIONS["late-fee"], spreadsheet.SKILL, task)
    assert rollout.error is None
    report = json.loads(rollout.answer)
    assert set(report["cells"]) == set(task.answer)
    assert CellScorer().score(task, rollout).hard == 1.0
    assert "output.xlsx" in rollout.trajectory[-1]["files"]


def test_suite_record() -> None:
    (suite,) = spreadsheet.suites()
    assert suite.name == "spreadsheet" and suite.harness == "agent" and suite.needs == "suites"
    assert Skill(suite.skill).name == "spreadsheet"
    assert Skill(spreadsheet.REFERENCE_SKILL).name == "spreadsheet"
    assert isinstance(suite.scorer, CellScorer)
