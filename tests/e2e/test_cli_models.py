"""`skilltrain train` with agent CLIs as both models: `--target cmd:claude --optimizer
cmd:codex`, where `claude` and `codex` on PATH are our fakes (tests/agents/fake_claude.py,
fake_codex.py), which print the real CLIs' formats and answer as the scripted HTTP server does.
The run must behave like the scripted server's: the harmful edit rejected, the good rule
accepted, usage counted from what the CLIs report, and a second run served from the first
one's response cache without starting a CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripted import GOOD_RULE, HARMFUL_RULE, make_tasks

AGENTS = Path(__file__).resolve().parents[1] / "agents"
KEYS = {"OPENAI_API_KEY": "sk-openai-secret-1", "ANTHROPIC_API_KEY": "sk-ant-secret-2",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-3"}
SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
TRAIN = ["train", "--target", "cmd:claude", "--optimizer", "cmd:codex", "--scorer", "exact",
         "--epochs", "1", "--batch-size", "6", "--lr", "2", "--gate", "strict", "--quiet",
         "--proposals", "0", "--no-screen", "--no-demonstrations", "--no-attribution"]


def put_fakes_on_path(tmp: Path) -> tuple[Path, dict[str, Path]]:
    """A bin folder whose `claude` and `codex` run our fakes, each logging its calls."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    logs = {}
    for name in ("claude", "codex"):
        logs[name] = tmp / f"{name}-calls.jsonl"
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nexec {sys.executable} {AGENTS / f'fake_{name}.py'} "
                          f"--log {logs[name]} --plan auto \"$@\"\n")
        script.chmod(0o755)
    return bin_dir, logs


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def train(args: list[str], bin_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", **KEYS)
    return subprocess.run([sys.executable, "-m", "skilltrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_training_with_agent_clis_as_target_and_optimizer(tmp_path):
    bin_dir, logs = put_fakes_on_path(tmp_path)
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    skill = tmp_path / "SKILL.md"
    skill.write_text(SKILL)
    out = tmp_path / "run"
    proc = train([*TRAIN, "--data", str(data), "--skill", str(skill), "--out", str(out)],
                 bin_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["accepted"] >= 1 and summary["steps"]["rejected"] >= 1
    assert summary["test"]["best"] > summary["test"]["initial"]
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best

    target, optimizer = calls(logs["claude"]), calls(logs["codex"])
    # the skill reached the target as its system prompt, the optimizer got JSON schemas
    assert all(c["schema"] is None for c in target)
    assert any(GOOD_RULE in c["system"] for c in target)
    assert {c["schema"] for c in optimizer} >= {"AnalystReply"}
    # the rejected harmful edit reached the next failure analyst, as over HTTP
    analysts = [c["prompt"] for c in optimizer if c["schema"] == "AnalystReply"]
    assert "did NOT help" in analysts[-1] and HARMFUL_RULE in analysts[-1]
    # usage is what the CLIs reported, one distinct call each
    usage = summary["usage"]
    assert usage["target"]["calls"] == len(target) > 0
    assert usage["optimizer"]["calls"] == len(optimizer) > 0
    assert usage["target"]["prompt_tokens"] > 0 and usage["target"]["cache_read_tokens"] > 0
    # each CLI saw its own provider's key (its login) and no other secret of the caller's
    for c in target:
        assert c["env"]["ANTHROPIC_API_KEY"] == KEYS["ANTHROPIC_API_KEY"]
        assert not {KEYS["OPENAI_API_KEY"], KEYS["AWS_SECRET_ACCESS_KEY"]} & set(c["env"].values())
    for c in optimizer:
        assert c["env"]["OPENAI_API_KEY"] == KEYS["OPENAI_API_KEY"]
        assert not {KEYS["ANTHROPIC_API_KEY"], KEYS["AWS_SECRET_ACCESS_KEY"]} & \
            set(c["env"].values())
    for path in out.rglob("*"):  # and no key reached the run folder
        if path.is_file():
            assert not any(k.encode() in path.read_bytes() for k in KEYS.values()), path

    again = tmp_path / "again"
    proc = train([*TRAIN, "--data", str(data), "--skill", str(skill), "--out", str(again),
                  "--cache", str(out / "run.sqlite")], bin_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(calls(logs["claude"])) == len(target)  # no CLI was started
    assert len(calls(logs["codex"])) == len(optimizer)
    replayed = json.loads((again / "summary.json").read_text())
    assert replayed["cache_hits"] >= len(target) + len(optimizer)
    assert (again / "best_skill.md").read_text() == best


def test_training_a_skill_for_an_agent_cli_on_the_target_endpoint(tmp_path, scripted_server):
    """The command harness's claude-code preset with `model: target` (what
    tests/e2e/test_real_clis.py runs with the real CLI on the embedded model): every rollout
    runs the CLI with the target's endpoint, the skill is installed where Claude Code reads
    skills, and the run folder keeps the CLI's session record as each rollout's transcript."""
    server = scripted_server("good")
    bin_dir, logs = put_fakes_on_path(tmp_path)
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(8)))
    skill = tmp_path / "SKILL.md"
    skill.write_text(SKILL)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data: {{path: {data}}}\nskill: {skill}\nscorer: exact\nharness: command\n"
                   "command: {preset: claude-code, model: target, timeout: 60}\n"
                   f"target: {{model: 'openai:scripted-target', base_url: '{server.base_url}'}}\n"
                   f"optimizer: {{model: 'openai:scripted-opt', base_url: '{server.base_url}'}}\n"
                   "train: {epochs: 1, batch_size: 4, lr: 1, proposals: 0, screen: false, "
                   "demonstrations: false, attribution: false}\ngate: {rule: strict}\n")
    out = tmp_path / "run"
    proc = train(["train", "-c", str(cfg), "--out", str(out), "--quiet"], bin_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert GOOD_RULE in (out / "best_skill.md").read_text()  # the agent followed the new rule
    rollouts = [json.loads(line) for path in out.glob("steps/*/rollouts.jsonl")
                for line in path.read_text().splitlines()]
    assert rollouts
    for r in rollouts:
        events = {e.get("event"): e for e in r["trajectory"]}
        argv = events["command"]["argv"]
        assert argv[:4] == ["claude", "--bare", "--exclude-dynamic-system-prompt-sections",
                            "--model"] and argv[4] == "scripted-target"
        assert ".claude/skills/adder/SKILL.md" in events["workspace"]["files"]
        turns = events["transcript"]["turns"]
        assert turns[0]["role"] == "user" and turns[-1]["content"].startswith("I read the skill")
    seen = calls(logs["claude"])
    assert {c["env"]["ANTHROPIC_BASE_URL"] for c in seen} == {server.base_url.removesuffix("/v1")}
    assert not set(KEYS.values()) & {v for c in seen for v in c["env"].values()}
