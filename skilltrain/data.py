"""Tasks, loading them from files or Python objects, and deterministic splits."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# which columns hold the task's parts
from skilltrain.config_sections import FieldsConfig as FieldMap


class DataError(ValueError):
    """A data file or row that cannot be used; the message names file, line and field."""


@dataclass(frozen=True)
class Task:
    """One scored task. `answer` is the scorer's reference and is never shown to the target."""

    id: str
    input: str
    answer: Any = None
    type: str = "default"
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Splits:
    train: list[Task]
    val: list[Task]
    test: list[Task]

    def all(self) -> list[Task]:
        return [*self.train, *self.val, *self.test]


def _rows(path: Path) -> Iterable[tuple[int, Any]]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    if suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            yield n, _json(line, f"{path}:{n}")
    elif suffix == ".json":
        data = _json(text, str(path), whole_file=True)
        if isinstance(data, dict) and isinstance(data.get("tasks"), list):
            data = data["tasks"]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of task objects (or {{'tasks': [...]}})")
        for n, row in enumerate(data, start=1):
            yield n, row
    elif suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        try:
            for row in reader:
                if None in row:  # more cells than the header names: a shifted row
                    raise DataError(f"{path}:{reader.line_num}: more cells than the header's "
                                    f"{len(reader.fieldnames or [])} columns")
                yield reader.line_num, row
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num + 1}: not valid CSV ({exc})") from None
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected .jsonl, .json or .csv")


def _json(text: str, where: str, whole_file: bool = False) -> Any:
    """Parse JSON; every way it can fail (syntax, nesting too deep for the parser, a number
    too long to convert) is a DataError naming `where`, plus the line in a whole file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = f":{exc.lineno}" if whole_file else ""
        raise DataError(f"{where}{line}: invalid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{where}: invalid JSON ({type(exc).__name__}: {exc})") from None


def _task_from_row(row: Any, where: str, fields: FieldMap, index: int) -> Task:
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected an object with fields, got {type(row).__name__}")

    def need(name: str) -> Any:
        value = row.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: field '{name}' is missing or empty")
        return value

    task_input = need(fields.input)
    if not isinstance(task_input, str):
        task_input = json.dumps(task_input, ensure_ascii=False)
    answer = need(fields.answer)
    raw_id = row.get(fields.id) if fields.id else None
    task_id = "" if raw_id is None else str(raw_id).strip()
    task_type = str(row.get(fields.type) or "default") if fields.type else "default"
    used = {fields.id, fields.input, fields.answer, fields.type}
    meta = {k: v for k, v in row.items() if k not in used}
    return Task(id=task_id or f"t{index:05d}", input=task_input, answer=answer,
                type=task_type, meta=meta)


def load_tasks(path: str | Path, fields: FieldMap | None = None) -> list[Task]:
    """Load tasks from JSONL, JSON or CSV. Every row must yield a task; ids must be unique."""
    p = Path(path)
    fm = fields or FieldMap()
    tasks = [
        _task_from_row(row, f"{p}:{n}", fm, i)
        for i, (n, row) in enumerate(_rows(p))
    ]
    if not tasks:
        raise DataError(f"{p}: no tasks found")
    _check_unique(tasks, str(p))
    return tasks


def tasks_from_objects(items: Iterable[Any], fields: FieldMap | None = None) -> list[Task]:
    """Accept Task objects or mappings, so a Python user needs no file."""
    fm = fields or FieldMap()
    tasks = [
        item if isinstance(item, Task) else _task_from_row(item, f"item {i}", fm, i)
        for i, item in enumerate(items)
    ]
    _check_unique(tasks, "tasks")
    return tasks


def _check_unique(tasks: Sequence[Task], where: str) -> None:
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise DataError(f"{where}: task id {t.id!r} appears twice; ids must be unique")
        seen.add(t.id)


def split_tasks(
    tasks: Sequence[Task], ratios: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0
) -> Splits:
    """Deterministic split by ratio and seed, stratified by task type so each split sees each type.

    The result depends only on the set of tasks (not on file order), so a re-ordered file gives
    the same split.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise DataError("split ratios: expected three non-negative numbers (train, val, test)")
    total = sum(ratios)
    rng = random.Random(seed)
    by_type: dict[str, list[Task]] = {}
    for t in sorted(tasks, key=lambda t: t.id):
        by_type.setdefault(t.type, []).append(t)
    for kind in sorted(by_type):
        rng.shuffle(by_type[kind])
    # interleave the types, then cut once: every split gets each type in proportion, and a
    # type with one or two tasks cannot round a whole split away
    order: list[Task] = []
    groups = [by_type[k] for k in sorted(by_type)]
    for i in range(max((len(g) for g in groups), default=0)):
        order += [g[i] for g in groups if i < len(g)]
    n = len(order)
    n_train = round(n * ratios[0] / total)
    n_val = n - n_train if ratios[2] == 0 else round(n * ratios[1] / total)
    if n >= 2:
        n_train = min(max(n_train, 1), n - 1)
        n_val = min(max(n_val, 1 if ratios[1] > 0 else 0), n - n_train)
    train, val, test = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    if not train or not val:
        raise DataError(
            f"split: {len(tasks)} tasks give {len(train)} train and {len(val)} validation tasks; "
            "need at least one of each"
        )
    return Splits(train, val, test)


def epoch_batches(
    train: Sequence[Task], batch_size: int, epoch: int, seed: int
) -> list[list[Task]]:
    """One pass over train in batches, shuffled with a seed that depends on the epoch."""
    order = list(train)
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
