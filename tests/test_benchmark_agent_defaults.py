"""A benchmark's own agent-harness settings (Benchmark.agent) fill only the `agent:` keys the
user left unset: set in a YAML file, by a train flag or by --set, the user's value wins; and
`eval --benchmark` runs the benchmark's harness."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skilltrain.benchmarks import get_benchmark
from skilltrain.benchmarks.officeqa import MAX_TURNS
from skilltrain.cli import _build_config, app
from skilltrain.cli_errors import set_overrides
from skilltrain.cli_evidence import target_and_harness
from skilltrain.config import ConfigError, dump_config, load_config, merge_overrides
from skilltrain.harness import AgentHarness, ChatHarness, EnvironmentHarness
from skilltrain.harness.tools import BUILTIN_TOOLS
from skilltrain.run_setup import build_harness, with_benchmark_agent

OFFICE = {"benchmark.name": "officeqa", "harness": "agent", "out": "runs/x"}
OFFICE_TOOLS = ("glob", "grep", "read_file", "python")


def yaml_file(tmp_path: Path, agent: str = "") -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(f"benchmark: officeqa\nharness: agent\n{agent}")
    return path


def test_officeqa_brings_its_tools_and_turn_limit_when_the_user_sets_neither(tmp_path):
    assert dict(get_benchmark("officeqa").agent) == {"builtin": list(OFFICE_TOOLS),
                                                     "max_turns": MAX_TURNS}
    for cfg in (_build_config(None, OFFICE), _build_config(yaml_file(tmp_path), {"out": "r"})):
        harness = build_harness(cfg)
        assert (harness.builtin, harness.max_turns) == (OFFICE_TOOLS, MAX_TURNS)


def test_a_yaml_value_wins_and_survives_the_flag_merge(tmp_path):
    path = yaml_file(tmp_path, "agent: {max_turns: 5}\n")
    cfg = _build_config(path, {"out": "r", "target.model": "openai:x"})  # flags re-validate
    assert cfg.agent.model_fields_set == {"max_turns"}
    harness = build_harness(cfg)
    assert (harness.max_turns, harness.builtin) == (5, OFFICE_TOOLS)  # the other key: filled
    explicit_null = build_harness(_build_config(yaml_file(tmp_path, "agent: {builtin: null}\n"),
                                                {"out": "r"}))
    assert explicit_null.builtin == BUILTIN_TOOLS and explicit_null.max_turns == MAX_TURNS


def test_the_max_turns_flag_wins():
    harness = build_harness(_build_config(None, {**OFFICE, "agent.max_turns": 3}))
    assert (harness.max_turns, harness.builtin) == (3, OFFICE_TOOLS)


def test_a_set_value_wins_and_a_flag_wins_over_set():
    sets = set_overrides(["agent.max_turns=4", "agent.builtin=[grep, python]"])
    harness = build_harness(_build_config(None, {**sets, **OFFICE}))
    assert (harness.max_turns, harness.builtin) == (4, ("grep", "python"))
    both = _build_config(None, {**sets, **OFFICE, "agent.max_turns": 9})
    assert build_harness(both).max_turns == 9


def test_the_run_folder_records_the_filled_values_and_a_resume_keeps_them(tmp_path):
    cfg = with_benchmark_agent(_build_config(None, OFFICE))
    saved = tmp_path / "config.yaml"
    saved.write_text(dump_config(cfg))
    assert f"max_turns: {MAX_TURNS}" in saved.read_text()
    resumed = merge_overrides(load_config(saved), {"out": str(tmp_path)}, str(saved))
    assert build_harness(resumed).max_turns == MAX_TURNS
    assert with_benchmark_agent(resumed) == resumed


def test_other_harnesses_and_benchmarks_are_left_alone():
    chat = _build_config(None, {"benchmark.name": "officeqa", "out": "r"})
    assert with_benchmark_agent(chat) == chat and isinstance(build_harness(chat), ChatHarness)
    sheet = _build_config(None, {"benchmark.name": "spreadsheetbench", "harness": "agent"})
    harness = build_harness(sheet)
    assert (harness.builtin, harness.max_turns, harness.single_shot) == (BUILTIN_TOOLS, 8, False)


def test_train_set_reaches_the_config_and_a_bad_value_names_the_set_key(tmp_path):
    result = CliRunner().invoke(app, ["train", "--benchmark", "officeqa", "--data-dir",
                                      str(tmp_path), "--harness", "agent", "--set",
                                      "agent.builtin=[find]", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "--set agent.builtin.0: Input should be 'python'" in result.output
    assert not (tmp_path / "r").exists()


def test_eval_uses_the_benchmarks_harness_and_an_explicit_max_turns_wins(monkeypatch):
    _, office = target_and_harness("openai:x", None, None, None, "officeqa")
    assert isinstance(office, AgentHarness)
    assert (office.builtin, office.max_turns) == (OFFICE_TOOLS, MAX_TURNS)
    _, short = target_and_harness("openai:x", None, 2, None, "officeqa")
    assert short.max_turns == 2 and short.builtin == OFFICE_TOOLS
    _, chat = target_and_harness("openai:x", None, None, None, None)
    assert isinstance(chat, ChatHarness)
    _, plain = target_and_harness("openai:x", "agent", None, None, None)
    assert (plain.builtin, plain.max_turns) == (BUILTIN_TOOLS, 8)  # the config's default
    _, searchqa = target_and_harness("openai:x", None, None, None, "searchqa")
    assert isinstance(searchqa, ChatHarness)
    with pytest.raises(ConfigError, match="--harness 'command': expected chat or agent"):
        target_and_harness("openai:x", "command", None, None, "officeqa")

    from skilltrain.benchmarks import alfworld

    fake = dataclasses.replace(alfworld.BENCHMARK, environment="agents.fake_alfworld:FakeAlfworld")
    monkeypatch.setattr(alfworld, "BENCHMARK", fake)
    _, env = target_and_harness("openai:x", None, None, None, "alfworld")
    assert isinstance(env, EnvironmentHarness) and env.factory.__name__ == "FakeAlfworld"


def test_the_benchmarks_listing_shows_agent_defaults():
    result = CliRunner().invoke(app, ["benchmarks"])
    assert result.exit_code == 0
    office = next(line for line in result.output.splitlines() if line.startswith("officeqa"))
    assert f'agent.builtin: ["glob", "grep", "read_file", "python"]; agent.max_turns: ' \
        f"{MAX_TURNS}" in office
    sheet = next(line for line in result.output.splitlines() if line.startswith("spreadsheet"))
    assert "agent." not in sheet


def test_skilltrain_config_shows_the_benchmarks_agent_defaults_and_yours_over_them():
    shown = CliRunner().invoke(app, ["config", "--set", "benchmark.name=officeqa",
                                     "--set", "harness=agent"])
    assert shown.exit_code == 0, shown.output
    assert f"max_turns: {MAX_TURNS}" in shown.output
    assert "builtin: [glob, grep, read_file, python]" in shown.output
    mine = CliRunner().invoke(app, ["config", "--set", "benchmark.name=officeqa",
                                    "--set", "harness=agent", "--set", "agent.max_turns=3"])
    assert "max_turns: 3" in mine.output and f"max_turns: {MAX_TURNS}" not in mine.output
