"""Bad input is one line on stderr, exit 2, and nothing written: each test reproduces one defect
of the issue (tracebacks, unbalanced region markers, markup eating brackets, and the smaller
ones) through the CLI in-process, with every model open made to fail loudly."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from scripted import Script, make_tasks
from typer.testing import CliRunner

import skilltrain
from skilltrain import Skill, Trainer
from skilltrain.cli import app
from skilltrain.config import ModelConfig
from skilltrain.console import Progress, print_summary
from skilltrain.data import DataError, Task, load_tasks
from skilltrain.models.fake import FakeModel
from skilltrain.records import Score
from skilltrain.scoring import ScorerError, check_scorer, coerce_score, make_scorer
from skilltrain.skill import Edit, EditStatus, SkillError

SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
CLOSED = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
MODELS = ["--target", "openai:x", "--optimizer", "openai:x"]


class ModelOpened(Exception):
    """Raised by the patched open_model: a command got as far as a model."""


@pytest.fixture(autouse=True)
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model a command opens fails loudly (exit 1 with this exception, never exit 2)."""
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise ModelOpened("a model was opened")

    monkeypatch.setattr("skilltrain.models.registry.open_model", refuse)
    monkeypatch.setenv("OPENAI_BASE_URL", CLOSED)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def one_line_error(result: Any) -> str:
    """The result is exit 2 with exactly one stderr line starting `error:`; that line."""
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


def write_inputs(folder: Path, n: int = 8) -> tuple[Path, Path]:
    data, skill = folder / "tasks.jsonl", folder / "SKILL.md"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(n)), encoding="utf-8")
    skill.write_text(SKILL, encoding="utf-8")
    return data, skill


def train_args(folder: Path, *extra: str) -> list[str]:
    data, skill = write_inputs(folder)
    return ["train", "--data", str(data), "--skill", str(skill), "--scorer", "exact", *MODELS,
            "--out", str(folder / "run"), "-q", *extra]


def make_run(folder: Path) -> Path:
    """A finished run folder, trained with the in-process fake model. Its config.yaml names
    real files and an endpoint on a closed port, so a resume of it is well-formed input that
    gets as far as opening the models."""
    data, skill = write_inputs(folder)
    out = folder / "run"
    model = FakeModel(Script(analyst_plan=["harmful", "good"]).respond)
    config = {"out": str(out), "scorer": "exact", "gate": {"rule": "strict"},
              "data": {"path": str(data)}, "skill": str(skill),
              "target": {"model": "openai:fake-target", "base_url": CLOSED},
              "optimizer": {"model": "openai:fake-opt", "base_url": CLOSED},
              "train": {"epochs": 2, "batch_size": 4, "minibatch_size": 8, "lr": 2, "lr_min": 1,
                        "proposals": 0, "screen": False, "demonstrations": False}}
    Trainer(config, target=model, optimizer=model).fit()
    return out


# -- 5. tracebacks instead of one-line errors ---------------------------------------------------

def test_unknown_gate_flag_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    line = one_line_error(cli(*train_args(tmp_path, "--gate", "bogus")))
    assert line.startswith("error: --gate: unknown gate") and "paired" in line
    assert not (tmp_path / "run").exists()


def test_unknown_gate_option_names_the_config_key(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("gate:\n  rule: strict\n  options: {chunk: 3}\n", encoding="utf-8")
    line = one_line_error(cli(*train_args(tmp_path, "-c", str(config))))
    assert f"{config}: gate.options: unknown option(s) chunk for gate 'strict'" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01binary", b"PK\x03\x04\x00\x00zip"])
def test_binary_skill_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    args = train_args(tmp_path)
    (tmp_path / "SKILL.md").write_bytes(content)
    line = one_line_error(cli(*args))
    assert str(tmp_path / "SKILL.md") in line and "expected UTF-8 Markdown" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("module, body, expected", [
    ("raising_scorer", "raise RuntimeError('boom\\nsecond line')",
     "raised RuntimeError: boom second line"),
    ("str_scorer", "return 'yes'", "returned str; expected Score, bool, a number in [0, 1]"),
    ("big_scorer", "return {'hard': 5}", "'hard' and 'soft' must be numbers in [0, 1]"),
])
def test_scorer_is_checked_before_any_model_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 module: str, body: str, expected: str) -> None:
    (tmp_path / f"{module}.py").write_text(f"def score(task, answer):\n    {body}\n",
                                           encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = train_args(tmp_path)
    args[args.index("exact")] = f"{module}:score"
    line = one_line_error(cli(*args))  # ModelOpened would be exit 1
    assert expected in line and "with its reference as the answer" in line
    assert not (tmp_path / "run").exists()


def test_eval_checks_the_scorer_before_the_model(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eval_scorer.py").write_text("def score(task, answer):\n    return None\n",
                                             encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    data, skill = write_inputs(tmp_path)
    result = cli("eval", "--skill", str(skill), "--data", str(data), "--target", "openai:x",
                 "--scorer", "eval_scorer:score")
    assert result.exit_code == 2, (result.stderr, result.exception)  # not ModelOpened
    assert result.stderr.splitlines()[-1].startswith("error: eval_scorer:score: returned NoneType")


def test_scorer_module_that_fails_to_import_is_one_line(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_scorer_mod.py").write_text("def score(task, answer)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = train_args(tmp_path)
    args[args.index("exact")] = "broken_scorer_mod:score"
    assert "raised SyntaxError" in one_line_error(cli(*args))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("finished"))


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to / "run")
    return to / "run"


def test_an_intact_run_folder_resumes_as_far_as_the_models(finished_run: Path,
                                                          tmp_path: Path) -> None:
    """The control for the corrupted-folder tests: only the corruption makes them fail."""
    run = copy_run(finished_run, tmp_path)
    result = cli("resume", str(run), "-q")
    assert isinstance(result.exception, ModelOpened), (result.stderr, result.exception)


@pytest.mark.parametrize("name, content, expected", [
    ("run.sqlite", b"this is not a database, just text" * 10, "not a usable SQLite database"),
    ("state.json", b'{"epoch": 1, "batch', "not valid JSON"),
    ("state.json", b"[1, 2, 3]", "expected an object, got a list"),
    ("state.json", b"\xff\xfe garbage", "not UTF-8 text"),
])
def test_garbage_run_files_on_resume_are_one_line_and_touch_nothing(
        finished_run: Path, tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    run = copy_run(finished_run, tmp_path)
    (run / name).write_bytes(content)
    before = snapshot(run)
    line = one_line_error(cli("resume", str(run), "-q"))
    assert str(run / name) in line and expected in line
    assert snapshot(run) == before


@pytest.mark.parametrize("field, value, expected", [
    ("history", 5, "history: expected a list, got 5"),
    ("incumbent", {"number": "1", "step": 2}, "incumbent.number: expected a non-negative"),
    ("incumbent", {"number": 7, "step": 2}, "v0007.md does not exist"),
    ("meter", None, "meter: expected an object, got null"),
    ("rejected", [{"step": 1, "delta": 0.0}], "rejected[0].edits: missing"),
    ("edit_ops", ["append", "rewrite-all"], "edit_ops[1]: expected one of append"),
])
def test_wrong_state_fields_on_resume_name_the_field(finished_run: Path, tmp_path: Path,
                                                     field: str, value: Any,
                                                     expected: str) -> None:
    run = copy_run(finished_run, tmp_path)
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    state[field] = value
    (run / "state.json").write_text(json.dumps(state), encoding="utf-8")
    before = snapshot(run)
    line = one_line_error(cli("resume", str(run), "-q"))
    assert "state.json" in line and expected in line, line
    assert snapshot(run) == before


def test_a_cache_database_of_another_shape_is_refused(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    (run / "run.sqlite").unlink()
    db = sqlite3.connect(run / "run.sqlite")
    db.execute("CREATE TABLE scores (id INTEGER, value TEXT)")
    db.close()
    before = snapshot(run)
    line = one_line_error(cli("resume", str(run), "-q"))
    assert "table 'scores' lacks column(s) skill_hash" in line
    assert snapshot(run) == before


@pytest.mark.parametrize("summary, expected", [
    ([1, 2], "summary.json: expected a JSON object, got a list"),
    ({"val": [0.5]}, "summary.json: val: expected an object, got a list"),
    ({"wall_s": float("nan")}, "summary.json: wall_s: expected a finite number"),
])
def test_report_of_a_wrong_summary_is_one_line(finished_run: Path, tmp_path: Path,
                                               summary: Any, expected: str) -> None:
    run = copy_run(finished_run, tmp_path)
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    before = snapshot(run)
    line = one_line_error(cli("report", str(run)))
    assert expected.replace("a JSON object", "an object") in line, line
    assert snapshot(run) == before  # no report.html


def test_report_of_a_binary_config_is_one_line(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    (run / "config.yaml").write_bytes(b"\x80\x81\x82")
    assert "config.yaml: not UTF-8 text" in one_line_error(cli("report", str(run)))
    assert not (run / "report.html").exists()


def test_binary_config_on_resume_is_one_line(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    (run / "config.yaml").write_bytes(b"\x80\x81\x82")
    before = snapshot(run)
    assert "config.yaml: not UTF-8 text" in one_line_error(cli("resume", str(run), "-q"))
    assert snapshot(run) == before


# -- 6. unbalanced protected-region markers ----------------------------------------------------

BEGIN, END = "<!-- skilltrain:begin {} -->", "<!-- skilltrain:end {} -->"


@pytest.mark.parametrize("lines, line_no, expected", [
    (["# Rules", BEGIN.format("keep"), "Never do X."], 2, "'keep' begins here but never ends"),
    (["# Rules", "Never do X.", END.format("keep")], 3, "'keep' ends here but never begins"),
    ([BEGIN.format("a"), "Never do X.", END.format("b")], 3,
     "end of region 'b' while region 'a' (begun on line 1) is open"),
    ([BEGIN.format("a"), BEGIN.format("b"), "x", END.format("b"), END.format("a")], 2,
     "begins inside region 'a'"),
    (["<!-- skilltrain:begin Keep -->", "x", "<!-- skilltrain:end Keep -->"], 1,
     "malformed protected-region marker"),
])
def test_unbalanced_markers_are_rejected_at_load(tmp_path: Path, lines: list[str], line_no: int,
                                                 expected: str) -> None:
    path = tmp_path / "SKILL.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SkillError) as info:
        Skill.from_file(path)
    assert str(info.value).startswith(f"{path}:{line_no}: ") and expected in str(info.value)


def test_unbalanced_marker_through_the_cli_names_file_and_line(tmp_path: Path) -> None:
    args = train_args(tmp_path)
    (tmp_path / "SKILL.md").write_text(f"# Rules\n{BEGIN.format('keep')}\nNever do X.\n",
                                       encoding="utf-8")
    line = one_line_error(cli(*args))
    assert f"{tmp_path / 'SKILL.md'}:2: protected region 'keep'" in line


def test_a_balanced_region_protects_its_text() -> None:
    skill = Skill(f"Body.\n{BEGIN.format('keep')}\nNever do X.\n{END.format('keep')}\n")
    skill.validate()
    _, (result,) = skill.apply([Edit(op="replace", target="Never do X.", content="Do X.")])
    assert result.status is EditStatus.PROTECTED_REGION


# -- 9. brackets in messages print literally ---------------------------------------------------

def test_missing_runtime_hint_keeps_its_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skilltrain.local.server", None)  # import fails
    line = one_line_error(cli("serve", "0.5b"))
    assert "install with: pip install 'skilltrain[local]'" in line


def test_brackets_in_config_errors_print_literally(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("harness: '[bold]agent[/bold]'\n", encoding="utf-8")
    line = one_line_error(cli(*train_args(tmp_path, "-c", str(config))))
    assert "'[bold]agent[/bold]'" in line


def test_progress_lines_and_summary_keep_brackets() -> None:
    buf = StringIO()
    console = Console(file=buf, width=200, force_terminal=False, highlight=False)
    Progress(console=console)({"event": "skip", "reason": "model [local] said [red]no[/red]"})
    Progress(console=console)({"event": "update", "applied": 1, "statuses": ["[applied]"]})
    print_summary({"steps": {"accepted": 0, "rejected": 0, "skipped": 0},
                   "infra_failures": {"total": 0}, "cost_usd": 0.0, "wall_s": 1.0,
                   "stopped": "budget [max_calls]", "best_skill": "runs/[x]/best_skill.md",
                   "val": {}, "test": {}}, console=console)
    out = buf.getvalue()
    for text in ("model [local] said [red]no[/red]", "[applied]", "budget [max_calls]",
                 "runs/[x]/best_skill.md"):
        assert text in out, out


# -- 10. the smaller ones ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a--b", "my--skill", "-a", "a-", "A", "a" * 65])
def test_skill_names_follow_the_agent_skills_spec(name: str) -> None:
    with pytest.raises(SkillError, match="'name'"):
        Skill(f"---\nname: {name}\n---\nBody.\n").validate()
    Skill("---\nname: a-b-c\n---\nBody.\n").validate()


def test_replay_with_a_missing_cache_says_so_and_creates_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "nope.sqlite"
    line = one_line_error(cli(*train_args(tmp_path, "--replay", "--cache", str(cache))))
    assert f"cache {cache}: no such file" in line
    assert not cache.exists() and not (tmp_path / "run").exists()


def test_replay_without_a_cache_names_the_missing_run_cache(tmp_path: Path) -> None:
    line = one_line_error(cli(*train_args(tmp_path, "--replay")))
    assert f"cache {tmp_path / 'run' / 'run.sqlite'}: no such file" in line


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--lr-schedule", "zigzag"),
                                         ("--epochs", "-1")])
def test_a_bad_flag_value_is_blamed_on_the_flag(tmp_path: Path, flag: str, value: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  epochs: 1\n", encoding="utf-8")
    line = one_line_error(cli(*train_args(tmp_path, "-c", str(config), flag, value)))
    assert line.startswith(f"error: {flag}: ") and str(config) not in line, line
    assert repr(value) in line or value in line


def test_a_bad_value_in_the_file_is_still_blamed_on_the_file(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  batch_size: 0\n", encoding="utf-8")
    line = one_line_error(cli(*train_args(tmp_path, "-c", str(config))))
    assert line.startswith(f"error: {config}: train.batch_size: ")


def test_failed_run_leaves_a_pre_existing_empty_out_folder_empty(tmp_path: Path) -> None:
    """Bad input fails before anything is written; a failure after the run folder was opened
    (here: the model) still leaves the user's empty folder empty."""
    args = train_args(tmp_path, "--gate", "nope")
    (tmp_path / "run").mkdir()
    one_line_error(cli(*args))
    assert list((tmp_path / "run").iterdir()) == []
    result = cli(*train_args(tmp_path))  # good input: fails at the (patched) model open
    assert isinstance(result.exception, ModelOpened)
    assert (tmp_path / "run").is_dir() and list((tmp_path / "run").iterdir()) == []


def test_evaluate_accepts_a_dict_target_like_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ModelConfig] = []

    async def fake_open(cfg: ModelConfig, stack: Any, role: str, *args: Any) -> FakeModel:
        seen.append(cfg)
        return FakeModel(lambda request: "4")

    monkeypatch.setattr("skilltrain.models.registry.open_model", fake_open)
    tasks = [{"id": "a", "input": "2+2", "answer": "4"}, {"id": "b", "input": "1+3",
                                                           "answer": "4"}]
    result = skilltrain.evaluate("Answer with the number.", tasks, scorer="exact",
                                 target={"model": "openai:m", "base_url": CLOSED,
                                         "temperature": 0.3})
    assert result["score"] == 1.0 and result["n"] == 2
    assert seen[0].model == "openai:m" and seen[0].temperature == 0.3
    with pytest.raises(Exception, match=r"evaluate\(target=\.\.\.\): target.temperature"):
        skilltrain.evaluate("s", tasks, scorer="exact", target={"model": "m", "temperature": 9})


# -- the pieces behind them --------------------------------------------------------------------

def test_check_scorer_does_not_await_a_judge() -> None:
    calls: list[str] = []

    async def judge(task: Task, answer: str) -> float:
        calls.append(answer)  # would be a model call
        return 1.0

    check_scorer(make_scorer(judge), Task("a", "q", {"x": 1}))
    assert calls == []


def test_check_scorer_passes_the_reference_as_the_answer() -> None:
    seen: list[str] = []

    def score(task: Task, answer: str) -> bool:
        seen.append(answer)
        return False  # a wrong verdict is no error: only the shape is checked

    check_scorer(make_scorer(score), Task("a", "q", ["x", 1]))
    assert seen == ['["x", 1]']
    with pytest.raises(ScorerError, match="numeric scorer: task 'a' reference 'abc'"):
        check_scorer(make_scorer("numeric"), Task("a", "q", "abc"))


def test_coerce_score_bounds_dict_results() -> None:
    assert coerce_score({"hard": 1, "soft": 0.5}) == Score(hard=1.0, soft=0.5)
    for bad in ({"hard": 2}, {"hard": 0.5, "soft": float("nan")}, {"hard": "1"}):
        with pytest.raises(ScorerError, match="must be numbers in"):
            coerce_score(bad)


@pytest.mark.parametrize("name, content, expected", [
    ("t.csv", "id,input,answer\n1," + "a" * 200_000 + ",c\n", "t.csv:2: not valid CSV"),
    ("t.csv", "id,input,answer\n1,a,b,extra\n", "t.csv:2: more cells than the header's 3"),
    ("t.jsonl", "[" * 100_000 + "\n", "t.jsonl:1: invalid JSON"),
    ("t.json", '{"tasks": [' + "1" * 5000 + "]}", "t.json: invalid JSON"),
])
def test_task_files_fail_as_data_errors(tmp_path: Path, name: str, content: str,
                                        expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=expected.replace("[", r"\[")):
        load_tasks(path)
