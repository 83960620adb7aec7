"""Reading a run folder's files, checked against the shapes skilltrain writes.

`report` and `resume` read files a user can edit, copy or corrupt. Both used to index into them
blindly, so a `summary.json` that is a list, or a `state.json` whose `history` is a number, ended
in a traceback (or, on resume, after the run folder had been touched). Here every file is read
as UTF-8, parsed, and checked field by field before anything uses it, and a bad one is a
`RunFileError` naming the file, the field and what was expected, which the CLI prints as one
line. Only what readers rely on is checked; unknown keys pass, so a newer run folder still reads.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

from skilltrain.skill import MAIN_FILE, Edit
from skilltrain.store import DATABASE_FILE, SELECTION_FILE, STATE_FILE, skill_dir, skill_file

Check = Callable[[Any, str], None]
"""Raises `_Bad(where, expected)` when a value does not have the shape."""


class RunFileError(ValueError):
    """A run-folder file that is not what skilltrain wrote there."""


class _Bad(Exception):
    def __init__(self, where: str, expected: str, value: Any) -> None:
        super().__init__(where)
        self.where, self.expected, self.value = where, expected, value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), repr(value)[:40])


def _is(expected: str, test: Callable[[Any], bool]) -> Check:
    def check(value: Any, where: str) -> None:
        if not test(value):
            raise _Bad(where, expected, value)
    return check


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


INT = _is("an integer", _integer)
COUNT = _is("a non-negative integer", lambda v: _integer(v) and v >= 0)
NUM = _is("a finite number", _number)
STR = _is("a string", lambda v: isinstance(v, str))
BOOL = _is("true or false", lambda v: isinstance(v, bool))
ANY = _is("anything", lambda v: True)
STEP_ID = _is("a step id (letters, digits, '-', '_')",
              lambda v: isinstance(v, str) and re.fullmatch(r"[\w-]+", v) is not None)


def opt(check: Check) -> Check:
    def optional(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)
    return optional


def one_of(values: tuple[str, ...]) -> Check:
    return _is("one of " + ", ".join(values), lambda v: v in values)


def list_of(item: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise _Bad(where, "a list", value)
        for i, v in enumerate(value):
            item(v, f"{where}[{i}]")
    return check


def map_of(item: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _Bad(where, "an object", value)
        for k, v in value.items():
            item(v, f"{where}.{k}")
    return check


def obj(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _Bad(where, "an object", value)
        for key in required:
            if key not in value:
                raise _Bad(f"{where}.{key}" if where else key, "present", None)
        for key, field_check in fields.items():
            if key in value:
                field_check(value[key], f"{where}.{key}" if where else key)
    return check


# -- the shapes ------------------------------------------------------------------------------

def step_row() -> Check:
    """A training step's row: state.json `history` and the `step_end` events."""
    return obj({"step": opt(NUM), "id": opt(STEP_ID), "version": INT, "kind": opt(STR),
                "outcome": opt(STR), "chosen": opt(STR), "candidates": NUM,
                "screened_out": NUM, "checks": map_of(NUM), "lr": opt(NUM),
                "lr_chosen": opt(NUM), "train_score": opt(NUM), "val_candidate": opt(NUM),
                "val_incumbent": opt(NUM), "skill_tokens": opt(NUM), "wall_s": opt(NUM),
                "gate_items": opt(NUM)})


def _usage() -> Check:
    return obj({"prompt_tokens": COUNT, "completion_tokens": COUNT, "calls": COUNT})


def state_shape() -> Check:
    """state.json: the keys a resume indexes are required; the rest is checked when present."""
    version = obj({"number": COUNT, "step": INT, "hash": STR}, ("number", "step"))
    ops = get_args(Edit.model_fields["op"].annotation)
    sources = get_args(Edit.model_fields["source"].annotation)
    edit = obj({"op": one_of(ops), "target": STR, "content": STR, "rationale": STR,
                "support": COUNT, "source": one_of(sources)}, ("op",))
    rejected = obj({"step": INT, "delta": NUM, "patterns": STR, "edits": list_of(edit)},
                   ("step", "delta", "edits"))
    meter = obj({"usage": list_of(_triple()), "models": map_of(STR), "failures": map_of(INT),
                 "retries": map_of(INT), "cache_hits": COUNT, "billed": map_of(_usage())})
    return obj({"epoch": COUNT, "batch_index": COUNT, "global_step": COUNT,
                "incumbent": version, "best": version, "epoch_start": version,
                "versions": list_of(obj({"number": COUNT, "step": INT, "accepted": BOOL,
                                         "gated": BOOL}, ("number",))),
                "history": list_of(step_row()), "rejected": list_of(rejected),
                "meta_notes": STR, "meter": meter, "stopped": opt(STR), "done": BOOL,
                "edit_ops": list_of(one_of(ops)), "adaptations": list_of(obj({})),
                "wall_s": NUM},
               ("epoch", "batch_index", "global_step", "incumbent", "best", "epoch_start",
                "versions", "history", "rejected", "meter"))


def _triple() -> Check:
    """A meter usage row: [role, stage, usage]."""
    usage = _usage()

    def check(value: Any, where: str) -> None:
        if not (isinstance(value, list) and len(value) == 3):
            raise _Bad(where, "[role, stage, usage]", value)
        STR(value[0], f"{where}[0]")
        STR(value[1], f"{where}[1]")
        usage(value[2], f"{where}[2]")
    return check


def summary_shape() -> Check:
    """summary.json: nothing is required and any field may be null (an older or newer run may
    lack or blank keys; the report shows a dash), but what is there is typed."""
    scores = map_of(opt(NUM))
    usage = obj({"calls": opt(COUNT), "prompt_tokens": opt(COUNT),
                 "completion_tokens": opt(COUNT), "cost_usd": opt(NUM)})
    counts = map_of(opt(COUNT))
    fields = {"val": scores, "test": scores, "test_by_type": map_of(opt(scores)),
              "delta": scores, "steps": counts, "cost_usd": NUM, "billed_cost_usd": NUM,
              "wall_s": NUM, "infra_failures": obj({"total": opt(COUNT), "by_kind": opt(counts),
                                                    "retried": opt(counts)}),
              "skill_tokens": counts, "best_version": COUNT, "usage": map_of(usage),
              "usage_by_stage": map_of(usage), "sizes": counts, "stopped": STR,
              "best_skill": STR, "final_gate": obj({})}
    return obj({key: opt(check) for key, check in fields.items()})


def step_file_shape(name: str) -> Check:
    """A per-step file the report reads: an object; selection.json's edits a list."""
    return obj({"edits": opt(list_of(ANY))}) if name == SELECTION_FILE else obj({})


# -- reading ---------------------------------------------------------------------------------

def read_text(path: Path) -> str | None:
    """The file as UTF-8 text; None when it does not exist."""
    if not path.exists():
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not UTF-8 text") from None


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise RunFileError(f"{where}: not valid JSON ({why})") from None


def _checked(data: Any, shape: Check, where: str) -> None:
    try:
        shape(data, "")
    except _Bad as bad:
        field = f"{bad.where}: " if bad.where else ""
        got = "" if bad.expected == "present" else f", got {_kind(bad.value)}"
        what = "missing" if bad.expected == "present" else f"expected {bad.expected}"
        raise RunFileError(f"{where}: {field}{what}{got}") from None


def read_json(path: Path, shape: Check) -> dict | None:
    """A JSON object with the given shape; None when the file does not exist."""
    text = read_text(path)
    if text is None:
        return None
    data = _parse(text, str(path))
    _checked(data, shape, str(path))
    return data


def read_events(path: Path) -> list[dict]:
    """events.jsonl as records. A line that is not JSON is skipped (a crash can cut the last
    one); a JSON line that is not an event object, or a bad step row, is an error."""
    text = read_text(path)
    out: list[dict] = []
    row = step_row()
    for n, line in enumerate((text or "").splitlines(), start=1):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        shape = row if isinstance(record, dict) and record.get("event") == "step_end" \
            else obj({"event": STR})
        _checked(record, shape, f"{path}:{n}")
        out.append(record)
    return out


def check_resumable(root: Path) -> None:
    """Everything a resume of `root` reads, read-only, so a bad file fails before the run folder
    is touched: state.json, the skill versions it names, and run.sqlite."""
    state = read_json(root / STATE_FILE, state_shape())
    if state is not None:
        for key in ("incumbent", "best", "epoch_start"):
            skill = root / skill_file(state[key]["number"])
            package = root / skill_dir(state[key]["number"]) / MAIN_FILE  # a package version
            if read_text(skill) is None and read_text(package) is None:
                raise RunFileError(f"{root / STATE_FILE}: {key}: {skill} does not exist")
    check_sqlite(root / DATABASE_FILE)


TABLES = (("scores", ("skill_hash", "task_id", "sample", "hard", "soft", "rollout")),
          ("ledger", ("key", "role", "stage", "model", "prompt_tokens", "completion_tokens")),
          ("responses", ("key", "model", "request", "response")))


def check_sqlite(path: Path, need: tuple[str, ...] = ()) -> None:
    """`path`, when it exists, is an SQLite database whose skilltrain tables have their columns;
    tables in `need` must exist. Opened read-only and immutable: no journal or WAL file is
    created, so checking leaves the folder exactly as it was. With a write-ahead log beside it
    (a run killed mid-write) only the header is checked: an immutable read cannot see the log,
    and the run's own open replays it."""
    if not path.exists():
        return
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read ({exc.strerror})") from None
    if head and head != b"SQLite format 3\x00":  # SQLite would take a short one as empty
        raise RunFileError(f"{path}: not a usable SQLite database (no SQLite header)")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        return  # tables may live only in the log (a killed run); immutable reads skip it
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table, columns in TABLES:
                if table in names:
                    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                    missing = [c for c in columns if c not in have]
                    if missing:
                        raise RunFileError(f"{path}: table {table!r} lacks column(s) "
                                           f"{', '.join(missing)}; not a skilltrain database")
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise RunFileError(f"{path}: not a usable SQLite database ({exc})") from None
    for table in need:
        if table not in names:
            raise RunFileError(f"{path}: has no {table!r} table; not a skilltrain cache")
