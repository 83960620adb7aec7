"""The real Claude Code and Codex CLIs on the embedded model: no API key, no internet.

Each test trains a SKILL.md for the real CLI (the command harness's preset with `model: target`,
so the CLI runs on `local:0.5b` through the embedded server's /v1/messages or /v1/responses; the
optimizer is our scripted HTTP server, so the step is deterministic and cheap) on a few tasks,
then checks what the run folder holds: every rollout ran the CLI cleanly on the embedded
model, the skill was installed where that CLI reads skills, and the CLI's own session record
came back as the rollout's transcript. It also asks the CLI as a model (`cmd:claude@local:0.5b`,
`cmd:codex@local:0.5b`) through `skilltrain eval`.

The CLIs are looked for on PATH, then in ~/.cache/skilltrain/npm (where .ci/run installs them:
`npm install --prefix ~/.cache/skilltrain/npm @anthropic-ai/claude-code @openai/codex`). A test
is skipped, with the reason, only where npm or the CLI is missing (or the embedded model). Calls
are few on purpose: Codex's full agent takes tens of seconds per call on the 0.5B model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.local

NPM_BIN = Path(os.environ.get("SKILLTRAIN_NPM_PREFIX", Path.home() / ".cache/skilltrain/npm")
               ) / "node_modules" / ".bin"
SEARCH = f"{os.environ.get('PATH', '')}{os.pathsep}{NPM_BIN}"
SKILL = "---\nname: adder\ndescription: How to answer sums.\n---\n\n# Sums\nAdd the numbers.\n"
TRAIN = [{"id": "t1", "input": "What is 2 plus 3?", "answer": "5"},
         {"id": "t2", "input": "What is 4 plus 4?", "answer": "8"}]
VAL = [{"id": "v1", "input": "What is 3 plus 6?", "answer": "9"}]
PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex"}


CLI_MISSING = "agent CLI missing"  # tests/conftest.py lets this skip pass even in CI


def cli_or_skip(name: str) -> str:
    try:
        import xllamacpp  # noqa: F401

        from skilltrain.local.assets import available
    except ImportError:
        pytest.skip("needs pip install 'skilltrain[local]'")
    if not available("0.5b"):
        pytest.skip("the embedded 0.5b model is not available")
    found = shutil.which(name, path=SEARCH)
    if found:
        return found
    if shutil.which("npm") is None:
        pytest.skip(f"{CLI_MISSING}: npm is not installed, so the {name} CLI cannot be")
    pytest.skip(f"{CLI_MISSING}: the {name} CLI is not installed: npm install --prefix "
                f"{NPM_BIN.parents[1]} {PACKAGES[name]}")


def write_run(tmp: Path, preset: str, optimizer_url: str, train: list[dict]) -> Path:
    for name, rows in (("train", train), ("val", VAL)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp / "SKILL.md").write_text(SKILL)
    cfg = tmp / "run.yaml"
    cfg.write_text(
        f"data: {{train: {tmp / 'train.jsonl'}, val: {tmp / 'val.jsonl'}}}\n"
        f"skill: {tmp / 'SKILL.md'}\nscorer: exact\nharness: command\n"
        f"command: {{preset: {preset}, model: target, timeout: 400}}\n"
        "target: {model: 'local:0.5b', max_tokens: 256}\n"
        f"optimizer: {{model: 'openai:scripted-opt', base_url: '{optimizer_url}'}}\n"
        "train: {epochs: 1, batch_size: 2, lr: 1, proposals: 0, screen: false, "
        "demonstrations: false, answer_form: false, attribution: false, slow_update: 'off', "
        "meta_skill: false}\ngate: {rule: strict}\n")
    return cfg


def skilltrain(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env["PATH"] = SEARCH
    return subprocess.run([sys.executable, "-m", "skilltrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1500)


def rollouts(out: Path) -> list[dict]:
    found = [json.loads(line) for path in sorted(out.glob("steps/*/rollouts.jsonl"))
             for line in path.read_text().splitlines() if line.strip()]
    assert found, "the run folder holds no rollouts"
    return found


def event(rollout: dict, name: str) -> dict:
    hits = [e for e in rollout["trajectory"] if e.get("event") == name]
    assert len(hits) == 1, (name, rollout["trajectory"])
    return hits[0]


def check_run(out: Path, program: str, skills_dir: str) -> list[dict]:
    """What every real-CLI run folder must hold; returns the transcripts. The 0.5B model may
    ramble past its token limit, which Claude Code ends with exit status 1: such a rollout is
    recorded with the CLI's message, and at least one must have run cleanly."""
    transcripts, clean = [], 0
    for r in rollouts(out):
        command = event(r, "command")
        assert Path(command["argv"][0]).name == program and not command["timed_out"]
        if command["exit_code"] == 0:
            clean += 1
        else:  # a failed run says why, in the CLI's own words
            assert r["error"] and r["error"] != "the command exited with status 1: ", r
        assert f"{skills_dir}/adder/SKILL.md" in event(r, "workspace")["files"]
        record = event(r, "transcript")  # the CLI's session record, read back
        assert record["turns"][0]["role"] == "user" and "adder" in record["turns"][0]["content"]
        assert any(t["role"] == "assistant" for t in record["turns"])
        assert record["usage"]["input"] > 0
        transcripts.append(record)
    assert clean >= 1, "no rollout ran the CLI cleanly"
    return transcripts


def ask_as_model(spec: str, tmp: Path) -> dict:
    proc = skilltrain(["eval", "--skill", str(tmp / "SKILL.md"), "--data", str(tmp / "val.jsonl"),
                       "--target", spec, "--scorer", "exact", "--timeout", "400", "--json"],
                      tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["n"] == 1 and result["infra_failures"] == 0, result
    return result


def test_claude_code_trains_on_the_embedded_model(tmp_path, scripted_server):
    cli_or_skip("claude")
    server = scripted_server("good")
    cfg = write_run(tmp_path, "claude-code", server.base_url, TRAIN)
    out = tmp_path / "run"
    proc = skilltrain(["train", "-c", str(cfg), "--out", str(out), "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    transcripts = check_run(out, "claude", ".claude/skills")
    # the server's prompt cache stayed warm: a later call read its prefix from the cache
    assert any(t["usage"]["cache_read"] > 0 for t in transcripts[1:]), \
        [t["usage"] for t in transcripts]
    result = ask_as_model("cmd:claude@local:0.5b", tmp_path)
    assert result["usage"]["target"]["calls"] == 1
    assert result["usage"]["target"]["prompt_tokens"] > 0


def test_codex_trains_on_the_embedded_model(tmp_path, scripted_server):
    cli_or_skip("codex")
    server = scripted_server("good")
    cfg = write_run(tmp_path, "codex", server.base_url, TRAIN[:1])  # one train task: few calls
    out = tmp_path / "run"
    proc = skilltrain(["train", "-c", str(cfg), "--out", str(out), "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_run(out, "codex", ".agents/skills")
    result = ask_as_model("cmd:codex@local:0.5b", tmp_path)
    assert result["usage"]["target"]["calls"] == 1
    assert result["usage"]["target"]["prompt_tokens"] > 0
