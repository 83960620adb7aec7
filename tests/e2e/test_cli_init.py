"""`skilltrain init DIR`, then `skilltrain train -c run.yaml` in DIR as the command prints it, as
subprocesses over HTTP: the models the project names are overridden to our scripted server on
127.0.0.1, everything else is the project as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripted import GOOD_RULE, HARMFUL_RULE

SECRET = "sk-test-init-key-456"


def cli(args: list[str], cwd: Path, base_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    if base_url:
        env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=SECRET)
    return subprocess.run([sys.executable, "-m", "skilltrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_init_then_train_over_http(tmp_path: Path, scripted_server) -> None:
    server = scripted_server("harmful,good")
    made = cli(["init", "demo"], tmp_path)
    assert made.returncode == 0, made.stderr
    assert "next: cd demo && skilltrain train -c run.yaml" in made.stdout
    demo = tmp_path / "demo"
    start = (demo / "SKILL.md").read_text()
    lint = cli(["lint", "SKILL.md", "--strict"], demo)
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout + lint.stderr

    run = cli(["train", "-c", "run.yaml", "--target", "openai:scripted-target",
               "--optimizer", "openai:scripted-opt", "--out", "runs/first", "-q"], demo,
              server.base_url)
    assert run.returncode == 0, run.stderr
    out = demo / "runs" / "first"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val"]["best"] > summary["val"]["initial"]
    assert summary["test"]["best"] > summary["test"]["initial"]
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best
    assert (demo / "SKILL.md").read_text() == start  # training never edits the project's file
    # the project's tasks reached the target: every one of the 24 inputs was asked at least once
    rows = [json.loads(line) for line in (demo / "tasks.jsonl").read_text().splitlines()]
    asked = {r["messages"][-1]["content"] for r in server.requests()
             if r["model"] == "scripted-target"}
    assert all(any(row["input"] in text for text in asked) for row in rows)
    # the run ran under the project's settings: one epoch of 6-task batches, the exact scorer
    config = (out / "config.yaml").read_text()
    assert "batch_size: 6" in config and "scorer: exact" in config
    assert "best skill:" in run.stdout
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_run_yaml_paths_are_relative_to_where_skilltrain_runs(tmp_path: Path) -> None:
    """From another folder the project's relative paths do not resolve: one line naming the
    file, exit 2, and no run folder (run.yaml says to run it from its own folder)."""
    assert cli(["init", "demo"], tmp_path).returncode == 0
    away = cli(["train", "-c", "demo/run.yaml", "--target", "openai:x", "--optimizer",
                "openai:x", "--out", "run", "-q"], tmp_path, "http://127.0.0.1:9/v1")
    assert away.returncode == 2
    lines = [line for line in away.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "tasks.jsonl" in lines[0], away.stderr
    assert not (tmp_path / "run").exists()
    assert "Run it from this folder" in (tmp_path / "demo" / "run.yaml").read_text()
