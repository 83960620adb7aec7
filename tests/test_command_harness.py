"""The command harness with a small script agent of our own (tests/agents/skill_agent.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest
from procs import alive

from skilltrain.data import Task
from skilltrain.harness.command import PRESETS, CommandHarness, install_skill, tagged_answer
from skilltrain.records import Rollout
from skilltrain.skill import Skill

AGENT = Path(__file__).resolve().parent / "agents" / "skill_agent.py"
CMD = f"{{python}} {AGENT}"
UPPER = Skill("---\nname: shout\ndescription: How to answer.\n---\n\nAnswer in upper case.\n")
PLAIN = Skill("Answer plainly.\n")


def run(harness: CommandHarness, skill: Skill, text: str, **meta: object) -> Rollout:
    task = Task(id="c1", input=text, answer="", meta=dict(meta))
    return asyncio.run(harness.run(skill, task, None))


def test_the_script_agent_reads_the_installed_skill() -> None:
    harness = CommandHarness(CMD)
    shouted = run(harness, UPPER, "Reply with the word: hello")
    plain = run(harness, PLAIN, "Reply with the word: hello")
    assert shouted.error is None and shouted.answer == "HELLO"
    assert plain.error is None and plain.answer == "hello"
    assert "skill shout read" in shouted.trajectory[2]["content"]
    assert "skill task-skill read" in plain.trajectory[2]["content"]  # our default name
    command = shouted.trajectory[1]
    assert command["event"] == "command" and command["exit_code"] == 0
    assert command["argv"][0] == sys.executable
    assert shouted.trajectory[-1]["files"] == {"skills/shout/SKILL.md": UPPER.chars,
                                               "task.md": len("Reply with the word: hello\n")}
    assert shouted.usage.calls == 0 and shouted.wall_s > 0


def test_install_skill_writes_agent_skills_front_matter(tmp_path: Path) -> None:
    path = install_skill(tmp_path, PLAIN, ".claude/skills", "task-skill")
    assert path == tmp_path / ".claude/skills/task-skill/SKILL.md"
    written = Skill(path.read_text())
    written.validate()
    assert written.name == "task-skill" and written.description
    assert written.body.strip() == "Answer plainly."
    kept = install_skill(tmp_path, UPPER, "skills", "task-skill")
    assert kept.read_text() == UPPER.text


def test_answer_from_a_named_file_and_attachments() -> None:
    harness = CommandHarness(CMD, answer="file", answer_file="answer.txt")
    rollout = run(harness, UPPER, "MODE: file\nReply with the word: file",
                  files={"data/extra.txt": "x"})
    assert rollout.error is None and rollout.answer == "FILE"
    assert "data/extra.txt" in rollout.trajectory[-1]["files"]
    assert "answer.txt" in harness.prompt.format_map(harness._values(
        Path("/w"), Path("/w/skills/a/SKILL.md"), "a"))


def test_timeout_kills_the_agent_and_its_children() -> None:
    harness = CommandHarness(CMD, timeout_s=3, keep_workspace=True)
    started = time.monotonic()
    task = Task(id="slow", input="MODE: sleep", answer="")
    rollout = asyncio.run(harness.run(PLAIN, task, None))
    assert time.monotonic() - started < 30
    assert rollout.error_kind == "timeout" and "timed out" in (rollout.error or "")
    assert rollout.answer == "" and rollout.score is None
    kept = Path(rollout.trajectory[-1]["kept_at"])
    pids_file = kept / "pids.txt"
    try:
        pids = [int(x) for x in pids_file.read_text().split()]
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids), "agent or its child survived the timeout"
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_the_agent_sees_only_the_secrets_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "t")
    assert run(CommandHarness(CMD), PLAIN, "MODE: env").answer == "none"
    given = CommandHarness(CMD, passthrough=["OPENAI_API_KEY"])
    assert run(given, PLAIN, "MODE: env").answer == "OPENAI_API_KEY"


def test_failures_and_missing_answers() -> None:
    failed = run(CommandHarness(CMD), PLAIN, "MODE: fail")
    assert failed.error_kind == "command_failed" and "status 3" in (failed.error or "")
    assert "something went wrong" in (failed.error or "")
    silent = run(CommandHarness(CMD, tag="RESULT:"), PLAIN, "Reply with the word: x")
    assert silent.error is None and silent.answer == ""
    assert {"role": "harness", "event": "no_answer", "expected": "RESULT:"} in silent.trajectory


def test_presets_install_the_skill_where_the_cli_looks(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("claude", "codex"):  # stand-ins that run our script agent
        fake = bin_dir / program
        fake.write_text(f"#!/bin/sh\nexec {sys.executable} {AGENT}\n")
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    claude = CommandHarness(preset="claude-code")
    rollout = run(claude, UPPER, "Reply with the word: preset")
    assert rollout.answer == "PRESET"
    assert ".claude/skills/shout/SKILL.md" in rollout.trajectory[-1]["files"]
    argv = rollout.trajectory[1]["argv"]
    assert argv[:2] == ["claude", "-p"] and "ANSWER:" in argv[2] and "SKILL.md" in argv[2]
    codex = CommandHarness(preset="codex")
    rollout = run(codex, UPPER, "Reply with the word: preset")
    assert rollout.answer == "PRESET"
    assert ".agents/skills/shout/SKILL.md" in rollout.trajectory[-1]["files"]
    assert rollout.trajectory[1]["argv"][:2] == ["codex", "exec"]
    assert "ANTHROPIC_API_KEY" in PRESETS["claude-code"].passthrough


def test_configuration_errors_are_raised_early() -> None:
    with pytest.raises(ValueError, match="needs a command"):
        CommandHarness()
    with pytest.raises(ValueError, match="not found"):
        CommandHarness("no-such-program-xyz --flag")
    with pytest.raises(ValueError, match="preset"):
        CommandHarness(CMD, preset="cursor")
    with pytest.raises(ValueError, match="cannot fill"):
        CommandHarness(CMD + " {unknown}")


def test_tagged_answer_takes_the_last_tagged_line() -> None:
    out = "thinking\nANSWER: draft\nmore\n**ANSWER: 42**\n"
    assert tagged_answer(out, "ANSWER:") == "42"
    assert tagged_answer("no tag", "ANSWER:") is None
