"""`skilltrain train` with `harness: environment` as a subprocess against the scripted HTTP
server in its --game mode: the target plays our counter game (tests/agents/counter_env.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripted import GOOD_RULE

TESTS = Path(__file__).resolve().parents[1]


def cli(args: list[str], base_url: str | None, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI as a child process that can import tests/agents (our environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    if base_url:
        env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-test-env-key")
    return subprocess.run([sys.executable, "-m", "skilltrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_train_with_the_environment_harness_over_http(tmp_path, scripted_server):
    server = scripted_server("good", ["--game"])
    data = tmp_path / "games.jsonl"
    data.write_text("".join(json.dumps({"id": f"g{i:02d}", "input": "Play the counter game.",
                                        "answer": str(1 + i % 3)}) + "\n" for i in range(12)))
    skill = tmp_path / "SKILL.md"
    skill.write_text("---\nname: counter\ndescription: plays the counter game\n---\n# Counter\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"data: {{path: {data}}}\nskill: {skill}\nscorer: reward\nharness: environment\n"
        "environment: {env: 'agents.counter_env:CounterGame', max_steps: 4}\n"
        "target: {model: openai:scripted-target}\noptimizer: {model: openai:scripted-opt}\n"
        "train: {epochs: 1, batch_size: 6, lr: 1}\ngate: {rule: strict}\n")
    out = tmp_path / "run"
    proc = cli(["train", "--config", str(cfg), "--max-steps", "1", "--out", str(out),
                "--quiet", "--proposals", "0", "--no-screen", "--no-demonstrations"],
               server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["accepted"] == 1
    assert summary["val"]["initial"] == 0.0 and summary["val"]["best"] == 1.0
    assert GOOD_RULE in (out / "best_skill.md").read_text()
    # the target played turn by turn: its later requests carry the game's observations
    target = [r for r in server.requests() if r["model"] == "scripted-target"]
    assert any("The counter is at" in r["messages"][-1]["content"] for r in target)
    # the failure analysts read the episode: actions and observations
    analysts = [r["messages"][-1]["content"] for r in server.requests()
                if (r.get("response_format") or {}).get("json_schema", {}).get("name")
                == "AnalystReply" and "got wrong" in r["messages"][-1]["content"]]
    assert analysts and '"action": "dec"' in analysts[0] and "The counter is at -1" in analysts[0]


def test_bad_environment_class_is_one_line_exit_2(tmp_path):
    data = tmp_path / "games.jsonl"
    data.write_text("".join(json.dumps({"id": f"g{i}", "input": "x", "answer": "1"}) + "\n"
                            for i in range(4)))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data: {{path: {data}}}\nscorer: reward\nharness: environment\n"
                   "environment: no_such_module_xyz:Game\n"
                   "target: {model: openai:scripted-target}\n")
    out = tmp_path / "run"
    proc = cli(["train", "--config", str(cfg), "--out", str(out), "--quiet"], None, tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no_such_module_xyz" in lines[0], proc.stderr
    assert not out.exists()
