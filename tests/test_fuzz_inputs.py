"""Property: whatever a user hands us in place of a file (random bytes, or JSON/YAML that looks
right but is wrong), the command fails with exit 2, exactly one line on stderr, and nothing
half-written, before any model is opened.

Every file a user gives is covered: tasks (JSONL, CSV), the skill, the config, and the run-folder
files `resume` and `report` read. Each example runs the CLI in-process (typer's CliRunner) with
`open_model` patched to raise, so reaching a model is a loud failure (exit 1), never a pass.
Random bytes are sometimes valid input by chance; those examples are discarded by asking the
library's own loader, which must then fail with its one error type and nothing else.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_errors import cli, make_run, no_models, one_line_error, snapshot, train_args

from skilltrain.config import ConfigError, load_config
from skilltrain.data import DataError, load_tasks
from skilltrain.skill import Skill, SkillError

__all__ = ["no_models"]  # the autouse fixture: models fail loudly here too

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="skilltrain-fuzz-") as tmp:
        yield Path(tmp)


def rejected(load: Callable[[], Any], error: type[Exception]) -> bool:
    """Whether the library loader rejects the input; any other exception is the bug we hunt."""
    try:
        load()
    except error:
        return True
    return False


def assert_fails_cleanly(args: list[str], folder: Path) -> str:
    """Exit 2, one stderr line, and the folder exactly as it was (no run folder, no files)."""
    before = snapshot(folder)
    line = one_line_error(cli(*args))
    assert snapshot(folder) == before, "files were written"
    return line


# -- the strategies ----------------------------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def wrong_task_rows(draw: st.DrawFn) -> str:
    """JSONL whose rows look like tasks but are not: a non-object, or an object whose input or
    answer is missing or empty."""
    good = {"id": "t1", "input": "What is 1 plus 2?", "answer": "3"}
    bad = draw(st.one_of(
        JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
        st.sampled_from(["input", "answer"]).flatmap(lambda key: st.one_of(
            st.just({k: v for k, v in good.items() if k != key}),
            st.sampled_from([None, "", "   "]).map(lambda v: {**good, key: v}))),
    ))
    rows = [good] * draw(st.integers(0, 3)) + [bad]
    return "".join(json.dumps(r) + "\n" for r in rows)


CSV_TEXT = st.lists(st.sampled_from(list('ab,"\n\r\x00 ') + ["input", "answer", "id"]),
                   max_size=30).map("".join)
MARKERS = st.sampled_from(["<!-- skilltrain:begin a -->", "<!-- skilltrain:end a -->",
                           "<!-- skilltrain:begin b -->", "<!-- skilltrain:end b -->",
                           "<!-- skilltrain:", "text", "\n", "---\n", "name: A--B\n"])


def config_keys() -> st.SearchStrategy[dict]:
    """A config mapping with one setting of the wrong kind, or a key that does not exist."""
    wrong = st.one_of(st.lists(st.integers(), min_size=1, max_size=2), st.just({"x": 1}),
                      st.just("not-a-number"), st.just(-5))
    key = st.sampled_from(["train.batch_size", "train.epochs", "train.lr_schedule", "gate.rule",
                           "gate.options", "harness", "target.temperature", "data.split",
                           "budget.max_cost", "train.no_such_key", "nonsense"])

    def nest(pair: tuple[str, Any]) -> dict:
        *parents, leaf = pair[0].split(".")
        node: dict = {leaf: pair[1]}
        for p in reversed(parents):
            node = {p: node}
        return node

    return st.tuples(key, wrong).map(nest)


@st.composite
def wrong_state(draw: st.DrawFn, state: dict,
                kinds: tuple[str, ...] = ("type", "drop", "version")) -> dict:
    """The real state.json with one field made wrong: a value of another kind, a required key
    dropped, or a version that names a skill file which does not exist."""
    kind = draw(st.sampled_from(kinds))
    if kind == "drop":
        key = draw(st.sampled_from(["epoch", "global_step", "incumbent", "best", "history",
                                    "versions", "rejected", "meter"]))
        return {k: v for k, v in state.items() if k != key}
    if kind == "version":
        key = draw(st.sampled_from(["incumbent", "best", "epoch_start"]))
        return {**state, key: {**state[key], "number": draw(st.integers(50, 9999))}}
    key, value = draw(st.sampled_from([
        ("epoch", "one"), ("batch_index", -1), ("global_step", 1.5), ("history", {"a": 1}),
        ("history", [1, 2]), ("versions", "v1"), ("incumbent", [1]), ("best", None),
        ("meter", []), ("rejected", {}), ("edit_ops", ["shout"]), ("wall_s", "slow"),
        ("meta_notes", 7), ("done", "yes"), ("history", [{"step": "two"}]),
    ]))
    return {**state, key: value}


@st.composite
def wrong_summary(draw: st.DrawFn) -> Any:
    """summary.json that is not an object, or an object with a field of the wrong kind."""
    return draw(st.one_of(
        JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
        st.sampled_from([("val", [1]), ("test", "high"), ("steps", 3), ("steps", {"total": "x"}),
                         ("usage_by_stage", {"t/r": 5}), ("wall_s", "long"),
                         ("infra_failures", [0]), ("best_version", -1),
                         ("test_by_type", {"best": 1})]).map(lambda kv: {kv[0]: kv[1]}),
    ))


def garbage_sqlite(draw: st.DrawFn, path: Path) -> None:
    """Random bytes that are not an SQLite file, or a real database whose skilltrain table
    lacks the columns a run reads."""
    if draw(st.booleans()):
        data = draw(st.binary(min_size=1, max_size=300))
        assume(not data.startswith(b"SQLite format 3"))
        path.write_bytes(data)
        return
    table = draw(st.sampled_from(["scores", "ledger", "responses"]))
    columns = draw(st.lists(st.sampled_from(["a", "b", "key", "model", "task_id"]), min_size=1,
                            max_size=3, unique=True))
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
    db.close()


# -- files handed to `train` -------------------------------------------------------------------
# Each test draws either random bytes (valid by chance now and then: the loader decides, and
# must fail only with its own error type) or input that is wrong by construction (asserted
# without asking the loader).

@FUZZ
@given(data=st.data())
def test_fuzz_jsonl_tasks(data: st.DataObject) -> None:
    with workdir() as folder:
        args = train_args(folder)
        path = folder / "tasks.jsonl"
        if data.draw(st.booleans()):
            path.write_text(data.draw(wrong_task_rows()), encoding="utf-8")
        else:
            path.write_bytes(data.draw(st.binary(max_size=200)))
            assume(rejected(lambda: load_tasks(path), DataError))
        assert "tasks.jsonl" in assert_fails_cleanly(args, folder)


@FUZZ
@given(content=st.one_of(st.binary(max_size=200), CSV_TEXT.map(str.encode)))
def test_fuzz_csv_tasks(content: bytes) -> None:
    with workdir() as folder:
        args = train_args(folder)
        path = folder / "tasks.csv"
        path.write_bytes(content)
        args[args.index("--data") + 1] = str(path)
        assume(rejected(lambda: load_tasks(path), DataError))
        assert "tasks.csv" in assert_fails_cleanly(args, folder)


@FUZZ
@given(content=st.one_of(st.binary(max_size=200),
                         st.lists(MARKERS, max_size=8).map(lambda p: "".join(p).encode())))
def test_fuzz_skill_file(content: bytes) -> None:
    with workdir() as folder:
        args = train_args(folder)
        path = folder / "SKILL.md"
        path.write_bytes(content)
        assume(rejected(lambda: Skill.from_file(path), SkillError))
        assert "SKILL.md" in assert_fails_cleanly(args, folder)


@FUZZ
@given(data=st.data())
def test_fuzz_config_file(data: st.DataObject) -> None:
    with workdir() as folder:
        args = train_args(folder)
        path = folder / "run.yaml"
        if data.draw(st.booleans()):
            path.write_text(yaml.safe_dump(data.draw(config_keys())), encoding="utf-8")
            with pytest.raises(ConfigError):
                load_config(path)
        else:
            path.write_bytes(data.draw(st.binary(max_size=200)))
            assume(rejected(lambda: load_config(path), ConfigError))
        assert "run.yaml" in assert_fails_cleanly([*args, "-c", str(path)], folder)


# -- run-folder files on `resume` and `report` ---------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("fuzz-run"))


@contextmanager
def run_copy(finished: Path) -> Iterator[Path]:
    with workdir() as folder:
        shutil.copytree(finished, folder / "run")
        yield folder / "run"


def _json_object(content: bytes) -> bool:
    try:
        return isinstance(json.loads(content.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def _state(run: Path) -> dict:
    return json.loads((run / "state.json").read_text(encoding="utf-8"))


@FUZZ
@given(data=st.data(), name=st.sampled_from(["state.json", "config.yaml", "run.sqlite"]))
def test_fuzz_resume_run_files(finished: Path, data: st.DataObject, name: str) -> None:
    with run_copy(finished) as run:
        path = run / name
        named = True  # whether the error must name the file
        if name == "run.sqlite":
            path.unlink()
            garbage_sqlite(data.draw, path)
        elif name == "state.json" and data.draw(st.booleans()):
            path.write_text(json.dumps(data.draw(wrong_state(_state(run)))), encoding="utf-8")
        elif name == "state.json":
            content = data.draw(st.binary(max_size=200))
            assume(not _json_object(content))
            path.write_bytes(content)
        else:  # a config.yaml that loads still names no tasks file: it fails, elsewhere
            path.write_bytes(data.draw(st.binary(max_size=200)))
            named = rejected(lambda: load_config(path), ConfigError)
        line = assert_fails_cleanly(["resume", str(run), "-q"], run)
        assert name in line or not named, line


@FUZZ
@given(data=st.data(), name=st.sampled_from(["state.json", "summary.json", "config.yaml"]))
def test_fuzz_report_run_files(finished: Path, data: st.DataObject, name: str) -> None:
    with run_copy(finished) as run:
        path = run / name
        if name == "config.yaml":  # shown as text: only bytes that are not UTF-8 are wrong
            content = data.draw(st.binary(min_size=1, max_size=200))
            assume(not _utf8(content))
            path.write_bytes(content)
        elif data.draw(st.booleans()):
            wrong = wrong_summary() if name == "summary.json" else \
                wrong_state(_state(run), kinds=("type", "drop"))  # a missing skill file: a note
            path.write_text(json.dumps(data.draw(wrong)), encoding="utf-8")
        else:
            content = data.draw(st.binary(max_size=200))
            assume(not _json_object(content))
            path.write_bytes(content)
        assert name in assert_fails_cleanly(["report", str(run)], run)


def _utf8(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
