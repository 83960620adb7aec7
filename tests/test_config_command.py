"""Every setting is documented, and `skilltrain config` prints the effective config (defaults
included, credentials redacted) as YAML that parses back to it, each key under its description."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from skilltrain.cli import app
from skilltrain.config import TrainConfig, dump_config, load_config, merge_overrides
from skilltrain.redaction import REDACTED

SECRET = "sk-do-not-print-1234"
RUN_YAML = f"""
data: {{path: tasks.jsonl, split: [0.6, 0.2, 0.2]}}
scorer: {{name: numeric, tolerance: 0.01}}
target:
  model: openai:gpt-4o-mini
  api_key: {SECRET}
  base_url: https://user:{SECRET}@example.com/v1
  extra_body: {{cache_prompt: false, note: "two\\nlines, ünïcode", auth_token: {SECRET}}}
train: {{epochs: 1, edit_ops: [append]}}
gate: {{rule: paired}}
prices: {{my-model: [0.5, 1.5]}}
"""


def leaves(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str | None]]:
    """(dotted key, description) of every leaf setting: a field that is not itself a section."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from leaves(kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field.description


def comments_above(text: str) -> dict[str, str]:
    """Dotted key -> the comment lines right above it, joined: read off the printed YAML by
    indentation, independently of the code that wrote it."""
    found: dict[str, str] = {}
    path: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        depth = (len(line) - len(stripped)) // 2
        if stripped.startswith("#"):
            block.append(stripped.removeprefix("#").strip())
        elif key := re.match(r"(\w+):", stripped):
            path = path[:depth] + [key[1]]
            found[".".join(path)] = " ".join(block)
            block = []
    return found


def run(*args: str):
    return CliRunner().invoke(app, ["config", *args])


def test_every_leaf_setting_has_a_description() -> None:
    found = list(leaves(TrainConfig))
    assert len(found) >= 90  # the walk reached every section, both model roles included
    assert [key for key, text in found if not (text or "").strip()] == []


def test_a_would_be_run_prints_as_yaml_equal_to_its_effective_config(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(RUN_YAML, encoding="utf-8")
    result = run("-c", str(path), "--set", "train.epochs=3", "--set", "gate.options={alpha: 0.01}")
    assert result.exit_code == 0, result.output
    effective = merge_overrides(load_config(path), {"train.epochs": 3,
                                                    "gate.options": {"alpha": 0.01}}, "test")
    assert yaml.safe_load(result.output) == effective.redacted()
    assert SECRET not in result.output and REDACTED in result.output
    assert "lr_min: 2" in result.output  # a default nobody wrote is printed


def test_a_run_folder_prints_the_config_a_resume_would_use(tmp_path: Path) -> None:
    source = tmp_path / "run.yaml"
    source.write_text(RUN_YAML, encoding="utf-8")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_config(load_config(source)), encoding="utf-8")
    result = run(str(run_dir))
    assert result.exit_code == 0, result.output
    saved = load_config(run_dir / "config.yaml").model_copy(update={"out": str(run_dir)})
    assert yaml.safe_load(result.output) == saved.redacted()
    assert SECRET not in result.output and "api_key: '***redacted***'" in result.output


def test_each_key_is_printed_under_its_description_as_a_comment() -> None:
    result = run()
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == TrainConfig().redacted()
    above = comments_above(result.output)
    for key, text in leaves(TrainConfig):
        assert above.get(key) == " ".join((text or "").split()), key
    assert above["target"] == TrainConfig.model_fields["target"].description


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = {("--set", "train.epochs"): "expected KEY=VALUE",
             ("--set", "train.nope=1"): "unknown key",
             ("--set", "train.epochs=[1"): "not valid YAML",
             (str(tmp_path),): "not a run folder"}
    for args, message in cases.items():
        result = run(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
