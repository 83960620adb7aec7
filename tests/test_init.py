"""`skilltrain init` writes a project that lints clean and parses, and never overwrites; the
trainer refuses a starting skill that lint finds errors in, naming file and line, before it
writes anything or opens a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from skilltrain.cli import app
from skilltrain.config import TrainConfig, load_config, parse_config
from skilltrain.data import load_tasks, split_tasks
from skilltrain.lint import lint_path
from skilltrain.preflight import check_start_skill
from skilltrain.scaffold import FILES, PAIRS, tasks
from skilltrain.skill import SkillError


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_init_writes_a_project_that_lints_clean_and_parses(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = cli("init", str(folder))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert f"next: cd {folder} && skilltrain train -c run.yaml" in result.stdout
    assert lint_path(folder / "SKILL.md") == []
    cfg = load_config(folder / "run.yaml")
    assert cfg == parse_config(yaml.safe_load((folder / "run.yaml").read_text()))
    assert (cfg.target.model, cfg.optimizer.model) == ("local:0.5b", "local:1.5b")
    assert (cfg.data.path, cfg.skill, cfg.scorer) == ("tasks.jsonl", "SKILL.md", "exact")
    rows = load_tasks(folder / cfg.data.path)
    splits = split_tasks(rows, cfg.data.split, cfg.data.seed)
    assert len(rows) == len(PAIRS) >= 12
    assert min(len(splits.train), len(splits.val), len(splits.test)) >= 4
    for split in (splits.train, splits.val, splits.test):  # both phrasings in every split
        assert {t.type for t in split} == {"plus", "add"}
    for row in rows:  # every answer is the bare sum of the two numbers asked about
        a, b = (int(w.strip("?.")) for w in row.input.split() if w.strip("?.").isdigit())
        assert row.answer == str(a + b)
    steps = -(-len(splits.train) // cfg.train.batch_size) * cfg.train.epochs
    assert 1 < steps <= 3  # a few steps: minutes, not hours, on the embedded models


def test_every_setting_run_yaml_sets_is_commented(tmp_path: Path) -> None:
    assert cli("init", str(tmp_path)).exit_code == 0
    text = (tmp_path / "run.yaml").read_text()
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not line.endswith(":"):
            assert " # " in line, f"uncommented setting: {line!r}"
    default = TrainConfig()
    cfg = load_config(tmp_path / "run.yaml")
    assert cfg.train.batch_size < default.train.batch_size  # sized small on purpose
    assert cfg.train.epochs <= default.train.epochs


def test_init_into_the_current_folder_prints_the_plain_command(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("init")
    assert result.exit_code == 0 and "next: skilltrain train -c run.yaml" in result.stdout
    assert (tmp_path / "tasks.jsonl").read_text().count("\n") == len(tasks())


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "SKILL.md").write_text("my own skill\n", encoding="utf-8")
    result = cli("init", str(tmp_path))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "SKILL.md" in lines[0]
    assert "already exists" in lines[0] and "--force" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SKILL.md"]  # nothing else written
    assert (tmp_path / "SKILL.md").read_text() == "my own skill\n"
    forced = cli("init", str(tmp_path), "--force")
    assert forced.exit_code == 0
    assert (tmp_path / "SKILL.md").read_text().startswith("---\nname: add-numbers\n")


def test_force_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    outside = tmp_path / "keep.md"
    outside.write_text("keep me\n", encoding="utf-8")
    (folder / "README.md").symlink_to(outside)
    assert cli("init", str(folder)).exit_code == 2
    assert cli("init", str(folder), "--force").exit_code == 0
    assert outside.read_text() == "keep me\n" and not (folder / "README.md").is_symlink()


def test_init_onto_a_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x", encoding="utf-8")
    result = cli("init", str(target))
    assert result.exit_code == 2 and "exists and is not a folder" in result.stderr


# -- the trainer refuses a starting skill with lint errors ---------------------------------

@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that gets as far as opening a model fails with exit 1, never 2."""
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a model was opened")

    monkeypatch.setattr("skilltrain.models.registry.open_model", refuse)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")


def train_with(tmp_path: Path, skill_text: str) -> tuple[Any, Path, Path]:
    data, skill = tmp_path / "tasks.jsonl", tmp_path / "SKILL.md"
    data.write_text("".join(json.dumps(r) + "\n" for r in tasks()), encoding="utf-8")
    skill.write_text(skill_text, encoding="utf-8")
    out = tmp_path / "run"
    result = cli("train", "--data", str(data), "--skill", str(skill), "--scorer", "exact",
                 "--target", "openai:x", "--optimizer", "openai:x", "--out", str(out), "-q")
    return result, skill, out


def test_train_refuses_a_skill_with_lint_errors_naming_file_and_line(tmp_path: Path,
                                                                     no_models: None) -> None:
    text = ("---\nname: adder\ndescription: Adds.\nmetadata:\n  version: 1.0\n"
            "compatibility: ''\n---\n# Add\n")
    result, skill, out = train_with(tmp_path, text)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {skill}:4: metadata-format: 'metadata' must map")
    assert "(and 1 more)" in lines[0] and f"skilltrain lint {skill}" in lines[0]
    assert not out.exists()


def test_train_accepts_plain_markdown_and_warnings(tmp_path: Path, no_models: None) -> None:
    """No front matter, an unknown field, a broken link in a single file: warnings, so the run
    goes on to open its models (the patched open_model's exit 1, not bad input's 2)."""
    for i, text in enumerate(("# Add\nAdd the numbers.\n", "---\nname: adder\ndescription: d"
                              "\nversion: 3\n---\nSee [x](gone.md).\n")):
        (tmp_path / str(i)).mkdir()
        result, _, _ = train_with(tmp_path / str(i), text)
        assert result.exit_code == 1, result.output
        assert str(result.exception) == "a model was opened"


def test_check_start_skill_on_a_package_names_the_folder_rule(tmp_path: Path) -> None:
    root = tmp_path / "adder"
    (root / "references").mkdir(parents=True)
    (root / "SKILL.md").write_text("---\nname: add-numbers\ndescription: d\n---\n"
                                   "See [t](references/table.md).\n", encoding="utf-8")
    cfg = TrainConfig(skill=str(root))
    with pytest.raises(SkillError) as info:
        check_start_skill(cfg, "")
    message = str(info.value)
    assert message.startswith(f"{root / 'SKILL.md'}:2: name-folder: ")
    assert "(and 1 more)" in message  # the missing references/table.md
    (root / "references" / "table.md").write_text("t", encoding="utf-8")
    renamed = root.rename(tmp_path / "add-numbers")
    check_start_skill(TrainConfig(skill=str(renamed)), "")  # clean now: no error


def test_check_start_skill_on_a_suites_text() -> None:
    cfg = TrainConfig(suite="house-number")
    check_start_skill(cfg, "---\nname: house-number\ndescription: d\n---\nBody\n")
    with pytest.raises(SkillError, match="^suite house-number skill:2: name-format: "):
        check_start_skill(cfg, "---\nname: Bad--Name\ndescription: d\n---\nBody\n")
