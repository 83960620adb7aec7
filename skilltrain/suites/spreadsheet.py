"""A spreadsheet suite we generate ourselves with openpyxl, for the agent and command harnesses.

Each task attaches an input workbook (`meta["files"]["input.xlsx"]`, base64 so tasks stay JSON)
and asks for a change: add a column computed by a house rule, or fill a summary table. The agent
writes and runs code that saves `output.xlsx`. The task's collector (`meta["collect"]`) reads the
answer cells of that workbook into a JSON string, which becomes the rollout's answer; the scorer
compares those cells with the reference (values rounded to 2 decimals): hard = all cells right,
soft = the fraction right, and the feedback names the first wrong cells with what the agent
wrote (and whether it was too high or too low) but never the reference values.

The rule is stated in each instruction, so feedback without reference values stays fair. What a
skill teaches here is the craft the target lacks: opening and saving with openpyxl, writing
computed values rather than formulas (openpyxl does not evaluate formulas, so a formula cell has
no value to compare), the exact cells to fill, rounding, and the output file's name.

Tasks are drawn from a seed (test first, then validation, then train, each from its own random
stream), so splits are reproducible and the test split does not move when train grows.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skilltrain.data import Splits, Task
from skilltrain.records import Rollout, Score
from skilltrain.suites.base import Suite, SuiteError

NAME = "spreadsheet"
INPUT, OUTPUT = "input.xlsx", "output.xlsx"
COLLECT = "skilltrain.suites.spreadsheet:collect_cells"
KINDS = ("commission", "net-sales", "late-fee")
SIZES = {"train": 24, "val": 12, "test": 12}

SKILL = """---
name: spreadsheet
description: Edit Excel workbooks with Python and openpyxl.
---

# Spreadsheet tasks

Use Python with openpyxl: load input.xlsx, make the change, save the result as output.xlsx.
"""

REFERENCE_SKILL = """---
name: spreadsheet
description: Edit Excel workbooks with Python and openpyxl.
---

# Spreadsheet tasks

Your first reply is one complete Python program in a ```python block; you see its output in the
next message. Never answer before the program has run. Adapt this program to the task: the
sheet name, the columns you read, the rule, and the header of the new column.

```python
import openpyxl
wb = openpyxl.load_workbook("input.xlsx")
ws = wb["Sales"]  # the sheet the task names
ws.cell(row=1, column=5, value="Commission")  # header of the new column E
for r in range(2, ws.max_row + 1):  # data starts in row 2
    units = ws.cell(row=r, column=3).value
    price = ws.cell(row=r, column=4).value
    revenue = units * price
    value = revenue * 0.04 + (150 if revenue >= 5000 else 0)  # the task's rule
    ws.cell(row=r, column=5, value=round(value, 2))  # a number, never a formula
wb.save("output.xlsx")
print("saved", ws.max_row - 1, "rows")
```

To fill a summary table, first add up a dict per key over the data rows, then write one value
per row of the summary sheet. If the program fails, fix it and run the whole program again.

Your first reply is the adapted program in a ```python block and nothing else: no FINAL yet.
"""


@dataclass(frozen=True)
class Drawn:
    instruction: str
    workbook: bytes
    answer: dict[str, float]


def _openpyxl() -> Any:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - depends on the environment
        raise SuiteError("suite 'spreadsheet' needs openpyxl; install with: "
                         "pip install 'skilltrain[suites]'") from None
    return openpyxl


def _save(wb: Any) -> bytes:
    """The workbook's bytes, the same on every run: openpyxl stamps the save time into the zip
    entries and the document properties, so both are pinned (equal tasks for equal seeds)."""
    fixed = dt.datetime(2024, 1, 1)
    wb.properties.created = fixed
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl writes "modified" as now
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2024-01-01T00:00:00Z",
                              data)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=fixed.timetuple()[:6]),
                         data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _money(rng: random.Random, low: int, high: int) -> float:
    return round(rng.uniform(low, high), 2)


_REPS = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jo")
_REGIONS = ("North", "South", "East", "West")
_CUSTOMERS = ("Acme", "Borealis", "Cobalt", "Dunmore", "Elmwood", "Fjord", "Granite")


def _workbook(title: str, header: list[str]) -> tuple[Any, Any]:
    """A new workbook whose first sheet is named `title` and has `header` in row 1."""
    wb = _openpyxl().Workbook()
    ws = wb.active
    ws.title = title
    ws.append(header)
    return wb, ws


def commission(rng: random.Random) -> Drawn:
    """Add a column by a house rule: 4% of revenue, plus 150 from 5000 of revenue on."""
    wb, ws = _workbook("Sales", ["Rep", "Region", "Units", "Unit price"])
    n = rng.randint(4, 7)
    answer = {}
    for i, rep in enumerate(rng.sample(_REPS, n), start=2):
        units, price = rng.randint(5, 120), _money(rng, 8, 90)
        ws.append([rep, rng.choice(_REGIONS), units, price])
        revenue = units * price
        answer[f"Sales!E{i}"] = round(revenue * 0.04 + (150 if revenue >= 5000 else 0), 2)
    text = (f'{INPUT} has a sheet "Sales" with the columns Rep, Region, Units and Unit price '
            f"(header in row 1, data in rows 2-{n + 1}). Add a column E with the header "
            '"Commission" holding each row\'s commission by the house rule: 4% of the revenue '
            "(Units x Unit price), plus a bonus of 150 when the revenue is at least 5000. "
            f"Round to 2 decimals. Save the workbook as {OUTPUT}.")
    return Drawn(text, _save(wb), answer)


def net_sales(rng: random.Random) -> Drawn:
    """Fill a summary table: paid orders count, refunded ones subtract, pending ones do not."""
    wb, orders = _workbook("Orders", ["Order", "Region", "Amount", "Status"])
    regions = sorted(rng.sample(_REGIONS, 3))
    totals = dict.fromkeys(regions, 0.0)
    for i in range(rng.randint(6, 10)):
        region, amount = rng.choice(regions), _money(rng, 20, 900)
        status = rng.choices(("paid", "refunded", "pending"), weights=(6, 2, 2))[0]
        orders.append([f"O-{1000 + i}", region, amount, status])
        totals[region] += {"paid": amount, "refunded": -amount, "pending": 0.0}[status]
    summary = wb.create_sheet("Summary")
    summary.append(["Region", "Net sales"])
    answer = {}
    for row, region in enumerate(regions, start=2):
        summary.append([region])
        answer[f"Summary!B{row}"] = round(totals[region], 2)
    text = (f'{INPUT} has a sheet "Orders" (Order, Region, Amount, Status; header in row 1) and '
            f'a sheet "Summary" listing regions in A2:A{len(regions) + 1}. Fill B2:B'
            f"{len(regions) + 1} with each region's net sales by the house rule: paid orders "
            "add their amount, refunded orders subtract it, pending orders are ignored. Round to "
            f"2 decimals. Save the workbook as {OUTPUT}.")
    return Drawn(text, _save(wb), answer)


def late_fee(rng: random.Random) -> Drawn:
    """Add a column by a house rule with a threshold and a floor."""
    wb, ws = _workbook("Invoices", ["Invoice", "Customer", "Amount", "Days late"])
    n = rng.randint(4, 7)
    answer = {}
    for i in range(2, n + 2):
        amount, days = _money(rng, 150, 4000), rng.choice((0, 3, 10, 14, 15, 21, 30, 45, 60))
        ws.append([f"INV-{rng.randint(100, 999)}", rng.choice(_CUSTOMERS), amount, days])
        answer[f"Invoices!E{i}"] = 0.0 if days <= 14 else round(max(25.0, amount * 0.03), 2)
    text = (f'{INPUT} has a sheet "Invoices" with the columns Invoice, Customer, Amount and Days '
            f"late (header in row 1, data in rows 2-{n + 1}). Add a column E with the header "
            '"Late fee" by the house rule: no fee up to 14 days late; from 15 days late the fee '
            f"is 3% of the amount, but at least 25. Round to 2 decimals. Save the workbook as "
            f"{OUTPUT}.")
    return Drawn(text, _save(wb), answer)


MAKERS: dict[str, Callable[[random.Random], Drawn]] = {
    "commission": commission, "net-sales": net_sales, "late-fee": late_fee}


def make_task(task_id: str, kind: str, rng: random.Random) -> Task:
    drawn = MAKERS[kind](rng)
    meta = {"files": {INPUT: {"base64": base64.b64encode(drawn.workbook).decode("ascii")}},
            "output": OUTPUT, "collect": COLLECT}
    return Task(id=task_id, input=drawn.instruction, answer=drawn.answer, type=kind, meta=meta)


def build(seed: int = 0, sizes: dict[str, int] | None = None) -> Splits:
    """Deterministic splits; every split holds every kind in near equal numbers."""
    sizes = {**SIZES, **(sizes or {})}
    drawn: dict[str, list[Task]] = {}
    seen: set[str] = set()  # reference cells already drawn: no workbook lands in two splits
    for split in ("test", "val", "train"):
        rng = random.Random(f"{NAME}:{seed}:{split}")
        kinds = [KINDS[i % len(KINDS)] for i in range(sizes[split])]
        rng.shuffle(kinds)
        tasks = []
        for i, kind in enumerate(kinds):
            task = make_task(f"sheet-{split}-{i:03d}", kind, rng)
            while json.dumps(task.answer, sort_keys=True) in seen:
                task = make_task(task.id, kind, rng)
            seen.add(json.dumps(task.answer, sort_keys=True))
            tasks.append(task)
        drawn[split] = tasks
    return Splits(drawn["train"], drawn["val"], drawn["test"])


# -- from the workspace to the answer, and the answer's score -----------------------------------

def _cell_value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def collect_cells(task: Task, workspace: Path, final: str) -> str:
    """The rollout's answer: the task's answer cells as found in the output workbook, as JSON.
    A missing or unreadable workbook is reported in the JSON; the scorer turns it into feedback.
    """
    name = str(task.meta.get("output", OUTPUT))
    report: dict[str, Any] = {"file": name}
    path = workspace / name
    if not path.is_file():
        report["error"] = f"{name} was not written"
        return json.dumps(report)
    try:
        wb = _openpyxl().load_workbook(path)  # formulas stay formulas: they have no value
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the agent's failure
        report["error"] = f"{name} could not be opened ({type(exc).__name__}: {exc})"[:300]
        return json.dumps(report)
    cells: dict[str, Any] = {}
    missing: list[str] = []
    for ref in task.answer:
        sheet, _, cell = ref.partition("!")
        if sheet not in wb.sheetnames:
            if sheet not in missing:
                missing.append(sheet)
            cells[ref] = None
            continue
        cells[ref] = _cell_value(wb[sheet][cell].value)
    report["cells"] = cells
    if missing:
        report["missing_sheets"] = missing
    return json.dumps(report, default=str)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class CellScorer:
    """Compares answer cells rounded to `places` decimals. Feedback names at most `show` wrong
    cells with what was found there, never the reference values."""

    places: int = 2
    show: int = 3

    def _wrong(self, got: Any, want: Any) -> str | None:
        """None when right, else how the found value is wrong (without the reference)."""
        if got is None or got == "":
            return "empty"
        if isinstance(got, str) and got.startswith("="):
            return f"a formula {got[:40]!r}, not a computed value"
        want_n, got_n = _number(want), _number(got)
        if want_n is None:
            ok = str(got).strip().lower() == str(want).strip().lower()
            return None if ok else f"got {str(got)[:40]!r}"
        if got_n is None:
            return f"got {str(got)[:40]!r}, not a number"
        if abs(round(got_n, self.places) - round(want_n, self.places)) < 10 ** -(self.places + 2):
            return None
        return f"got {got_n:g}, too {'high' if got_n > want_n else 'low'}"

    def score(self, task: Task, rollout: Rollout) -> Score:
        want: dict[str, Any] = dict(task.answer)
        try:
            report = json.loads(rollout.answer)
        except (json.JSONDecodeError, TypeError):
            report = None
        if not isinstance(report, dict):
            return Score(hard=0.0, soft=0.0, feedback=(
                "no cell report from the output workbook; this suite needs the agent or "
                "command harness"))
        if report.get("error"):
            return Score(hard=0.0, soft=0.0, feedback=str(report["error"]))
        cells = report.get("cells") or {}
        wrong = [(ref, why) for ref in want
                 if (why := self._wrong(cells.get(ref), want[ref])) is not None]
        right = len(want) - len(wrong)
        soft = right / len(want) if want else 1.0
        if not wrong:
            return Score(hard=1.0, soft=1.0, feedback=f"all {len(want)} answer cells right")
        named = "; ".join(f"{ref} ({why})" for ref, why in wrong[: self.show])
        more = f" and {len(wrong) - self.show} more" if len(wrong) > self.show else ""
        sheets = report.get("missing_sheets")
        note = f"; missing sheets: {', '.join(sheets)}" if sheets else ""
        return Score(hard=0.0, soft=round(soft, 4),
                     feedback=f"{right}/{len(want)} answer cells right; wrong: {named}{more}"
                              f"{note}")


def suites() -> list[Suite]:
    return [Suite(name=NAME, description="add computed columns and fill summary tables in "
                  "generated Excel workbooks (agent/command harness)", skill=SKILL,
                  scorer=CellScorer(), build=build, harness="agent", needs="suites")]
