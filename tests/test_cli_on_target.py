"""The command harness's presets on the run's target model (`command.model: target`): the CLI
gets the target's endpoint and name (harness/cli_endpoint.py), HOME is the workspace, the
caller's keys stay out, and the CLI's session record comes back as the rollout's transcript.
`claude` and `codex` on PATH are our fakes, which act as the real agents do in the command
harness: read task.md and the installed SKILL.md, answer on stdout, keep a session file where
the real CLI keeps it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from scripted import GOOD_RULE

from skilltrain.data import Task
from skilltrain.harness.cli_endpoint import NO_KEY
from skilltrain.harness.command import CommandHarness
from skilltrain.models.base import ModelError
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.fake import FakeModel
from skilltrain.models.meter import Meter
from skilltrain.skill import Skill

AGENTS = Path(__file__).resolve().parent / "agents"
SKILL = Skill(f"---\nname: adder\ndescription: Adds numbers.\n---\n\n{GOOD_RULE}\n")
TASK = Task(id="t1", input="What is 2 plus 5?", answer="7")
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-caller-1", "OPENAI_API_KEY": "sk-openai-caller-2"}


class Endpoint:
    """A target as the harness sees it: a model name at a base URL (the embedded server's
    model is this, an OpenAIModel at http://127.0.0.1:PORT/v1/)."""

    name = "qwen2.5-0.5b-instruct"
    base_url = "http://127.0.0.1:5/v1/"

    async def complete(self, request: dict) -> None:
        raise AssertionError("the CLI calls the endpoint itself")


@pytest.fixture
def fakes(tmp_path, monkeypatch) -> Path:
    """`claude` and `codex` on PATH as our fakes; their calls are logged to tmp/calls.jsonl."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    for name in ("claude", "codex"):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nexec {sys.executable} {AGENTS / f'fake_{name}.py'} "
                          f"--log {log} \"$@\"\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return log


def target(model: object = None) -> RoleClient:
    return RoleClient(model or Endpoint(), "target", Meter(),
                      settings=CallSettings(max_tokens=300))


def only_call(log: Path) -> dict:
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 1
    return calls[0]


@pytest.mark.parametrize("preset", ["claude-code", "codex"])
def test_the_agent_runs_on_the_target_endpoint_and_its_transcript_is_kept(preset, fakes):
    harness = CommandHarness(preset=preset, model="target", timeout_s=60)
    rollout = asyncio.run(harness.run(SKILL, TASK, target()))
    assert rollout.error is None and rollout.answer == "7"  # it followed the installed skill
    call = only_call(fakes)
    env, argv = call["env"], call["argv"]
    assert env["HOME"] == f"{call['cwd']}/.tmp/home"  # in the workspace, not the caller's
    assert not set(KEYS.values()) & set(env.values())
    listing = rollout.trajectory[-1]["files"]  # the CLI's own files are not the agent's work
    skills = ".claude/skills" if preset == "claude-code" else ".agents/skills"
    assert sorted(listing) == [f"{skills}/adder/SKILL.md", "task.md"]
    if preset == "claude-code":
        assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:5"
        assert env["ANTHROPIC_API_KEY"] == NO_KEY
        assert env["CLAUDE_CODE_ATTRIBUTION_HEADER"] == "0"  # the server's prompt cache
        assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "300"
        assert argv[argv.index("--model") + 1] == Endpoint.name
        assert {"--bare", "--exclude-dynamic-system-prompt-sections"} <= set(argv)
        assert "Read" in {t.get("name") for t in _turns(rollout)}
        # each reply's tokens once, the cache reads (the server's prompt cache) included
        assert _usage(rollout) == {"input": 90 + 120, "cache_read": 100, "output": 24}
    else:
        assert env["CODEX_HOME"] == f"{env['HOME']}/.codex"
        assert 'model="qwen2.5-0.5b-instruct"' in argv and "--ephemeral" not in argv
        assert any('base_url="http://127.0.0.1:5/v1"' in w and 'wire_api="responses"' in w
                   for w in argv)
        turns = _turns(rollout)
        assert "exec_command" in {t.get("name") for t in turns}
        assert all("You are Codex." not in t["content"] for t in turns)  # its own prompt
        assert _usage(rollout) == {"input": 75, "cache_read": 45, "output": 5}  # last total
    assert _turns(rollout)[-1] == {"role": "assistant",
                                   "content": "I read the skill and the task.\nANSWER: 7"}


def _usage(rollout) -> dict:  # noqa: ANN001
    return next(e for e in rollout.trajectory if e.get("event") == "transcript")["usage"]


def _turns(rollout) -> list[dict]:  # noqa: ANN001
    found = [e for e in rollout.trajectory if e.get("event") == "transcript"]
    assert len(found) == 1
    return found[0]["turns"]


def test_on_its_own_settings_the_cli_keeps_the_callers_login_and_home(fakes, tmp_path):
    harness = CommandHarness(preset="claude-code", timeout_s=60)
    rollout = asyncio.run(harness.run(SKILL, TASK, target()))
    assert rollout.answer == "7"
    env = only_call(fakes)["env"]
    assert env["HOME"] == str(tmp_path / "home")
    assert env["ANTHROPIC_API_KEY"] == KEYS["ANTHROPIC_API_KEY"]
    assert "ANTHROPIC_BASE_URL" not in env
    assert not [e for e in rollout.trajectory if e.get("event") == "transcript"]


def test_on_a_target_without_an_endpoint_the_run_stops_with_one_line(fakes):
    harness = CommandHarness(preset="claude-code", model="target", timeout_s=60)
    with pytest.raises(ModelError) as err:
        asyncio.run(harness.run(SKILL, TASK, target(FakeModel(lambda r: "x"))))
    assert err.value.kind == "fatal" and "local:0.5b" in err.value.message
    with pytest.raises(ValueError, match="expected 'own' or 'target'"):
        CommandHarness(preset="codex", model="theirs")


def test_a_failed_cli_run_says_why_in_the_clis_own_words(fakes):
    """Claude Code prints an API error on stdout and nothing on stderr: the rollout's error
    quotes it rather than an empty stderr."""
    harness = CommandHarness(preset="claude-code", timeout_s=60, template=(
        f"{sys.executable} {AGENTS / 'fake_claude.py'} --fail 500 -p {{prompt}} "
        "--output-format text"))
    rollout = asyncio.run(harness.run(SKILL, TASK, target()))
    assert rollout.error_kind == "command_failed"
    assert rollout.error.startswith("the command exited with status 1: API Error: 500")


def test_the_agent_harness_speaks_text_to_a_cli_model():
    from skilltrain.harness import make_harness

    assert make_harness("agent", target_model="cmd:claude").protocol == "text"
    assert make_harness("agent", target_model="openai:gpt-4o").protocol == "tools"
