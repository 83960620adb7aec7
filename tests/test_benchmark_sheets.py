"""The SpreadsheetBench adapter over our fixture: cases, the collector, the case scorer, and an
agent run over HTTP (tests/agents/tool_server.py) that writes every case's output."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

openpyxl = pytest.importorskip("openpyxl")

from agents.tool_server import SALES_SOLVE, solve_once  # noqa: E402

from skilltrain.benchmarks import get_benchmark  # noqa: E402
from skilltrain.benchmarks.spreadsheet import CaseScorer, answer_cells, collect_cases  # noqa: E402
from skilltrain.harness.agent import attach_files  # noqa: E402
from skilltrain.records import Rollout  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def tasks():
    return get_benchmark("spreadsheetbench").load(FIXTURES / "spreadsheetbench")


def run_code(task, code: str, tmp: Path) -> Rollout:
    import subprocess
    import sys

    attach_files(tmp, task.meta["files"])
    subprocess.run([sys.executable, "-c", code], cwd=tmp, check=True, capture_output=True)
    return Rollout(task_id=task.id, skill_hash="h", answer=collect_cases(task, tmp, ""),
                   trajectory=[])


def test_cases_and_reference_cells_come_from_the_answer_workbooks():
    splits = tasks()
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [4, 2, 2]
    task = splits.train[0]  # "D2:D4" without a sheet: the answer workbook's first sheet
    assert sorted(task.meta["files"]) == ["case1/input.xlsx", "case2/input.xlsx"]
    assert [list(c) for c in task.answer["cases"]] == [["Sales!D2", "Sales!D3", "Sales!D4"]] * 2
    # inputs hold no answers; the references are price * qty of the inputs
    wb = openpyxl.load_workbook(io.BytesIO(base64.b64decode(
        task.meta["files"]["case2/input.xlsx"]["base64"])))
    ws = wb["Sales"]
    assert ws["D2"].value is None
    assert task.answer["cases"][1]["Sales!D3"] == pytest.approx(ws["B3"].value * ws["C3"].value)


def test_answer_positions_with_sheets_and_several_ranges():
    wb = openpyxl.Workbook()
    wb.active.title = "A b"
    wb.create_sheet("Other")
    assert answer_cells("'A b'!B2:C3, Other!$A$1", "A b", wb) == [
        "A b!B2", "A b!C2", "A b!B3", "A b!C3", "Other!A1"]
    with pytest.raises(ValueError, match="no sheet 'Nope'"):
        answer_cells("Nope!A1", "A b", wb)


def test_scores_all_cases_some_cases_and_none(tmp_path):
    task = tasks().train[1]
    right = run_code(task, SALES_SOLVE.replace("OFF", ""), tmp_path / "right")
    assert CaseScorer().score(task, right).hard == 1.0
    near = run_code(task, SALES_SOLVE.replace("OFF", "+ 0.001"),  # rounds the same
                    tmp_path / "near")
    assert CaseScorer().score(task, near).hard == 1.0
    one = run_code(task, SALES_SOLVE.replace("OFF", "").replace("(1, 2)", "(1,)"), tmp_path / "one")
    half = CaseScorer().score(task, one)
    assert (half.hard, half.soft) == (0.0, 0.5)
    assert "case2: case2/output.xlsx was not written" in half.feedback
    off = run_code(task, SALES_SOLVE.replace("OFF", "+ 1"), tmp_path / "off")
    wrong = CaseScorer().score(task, off)
    assert (wrong.hard, wrong.soft) == (0.0, 0.0) and "too high" in wrong.feedback
    reference = str(task.answer["cases"][0]["Sales!D3"])
    assert f"got {reference}" not in wrong.feedback  # never the reference values
    chat = Rollout(task_id=task.id, skill_hash="h", answer="42", trajectory=[])
    assert "needs the agent harness" in CaseScorer().score(task, chat).feedback


def test_the_agent_harness_solves_both_cases_over_http():
    task = tasks().test[0]

    rollout = solve_once(SALES_SOLVE.replace("OFF", ""), get_benchmark("spreadsheetbench").skill,
                         task)
    assert rollout.error is None
    assert len(json.loads(rollout.answer)["cases"]) == 2
    assert CaseScorer().score(task, rollout).hard == 1.0
