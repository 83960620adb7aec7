"""`skilltrain train` and `skilltrain eval` as subprocesses against a real HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripted import GOOD_RULE, HARMFUL_RULE, make_tasks

SECRET = "sk-test-very-secret-key-123"
SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"


def cli(args: list[str], base_url: str | None, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    if base_url:
        env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=SECRET)
    return subprocess.run([sys.executable, "-m", "skilltrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def write_inputs(tmp: Path) -> tuple[Path, Path]:
    data = tmp / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    skill = tmp / "SKILL.md"
    skill.write_text(SKILL)
    return data, skill


TRAIN = ["train", "--target", "openai:scripted-target", "--optimizer", "openai:scripted-opt",
         "--scorer", "exact", "--epochs", "1", "--batch-size", "6", "--lr", "2",
         "--gate", "strict", "--quiet", "--proposals", "0", "--no-screen", "--no-demonstrations"]


def test_train_over_http_accepts_good_rejects_harmful(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    data, skill = write_inputs(tmp_path)
    out = tmp_path / "run"
    proc = cli([*TRAIN, "--data", str(data), "--skill", str(skill), "--out", str(out)],
               server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["accepted"] == 1 and summary["steps"]["rejected"] == 1
    assert summary["val"]["best"] > summary["val"]["initial"]
    assert summary["test"]["best"] > summary["test"]["initial"]
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best
    # the rejected harmful edit reaches the next failure analyst as negative feedback
    analysts = [r["messages"][-1]["content"] for r in server.requests()
                if (r.get("response_format") or {}).get("json_schema", {}).get("name")
                == "AnalystReply" and "got wrong" in r["messages"][-1]["content"]]
    assert len(analysts) >= 2
    assert "did NOT help" not in analysts[0]
    assert "did NOT help" in analysts[1] and HARMFUL_RULE in analysts[1]
    # optimizer calls carried a JSON schema; target calls did not
    assert all("response_format" not in r for r in server.requests()
               if r["model"] == "scripted-target")
    # the API key never reaches the run folder
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert "before / after" in proc.stdout


def test_eval_command(tmp_path, scripted_server):
    server = scripted_server()
    data, skill = write_inputs(tmp_path)
    good = tmp_path / "good.md"
    good.write_text(SKILL + GOOD_RULE + "\n")
    weak = cli(["eval", "--skill", str(skill), "--data", str(data), "--target",
                "openai:scripted-target", "--scorer", "exact", "--json"], server.base_url,
               tmp_path)
    strong = cli(["eval", "--skill", str(good), "--data", str(data), "--target",
                  "openai:scripted-target", "--scorer", "exact", "--json"], server.base_url,
                 tmp_path)
    assert weak.returncode == 0 and strong.returncode == 0, weak.stderr + strong.stderr
    assert json.loads(weak.stdout)["score"] == 0.0
    assert json.loads(strong.stdout)["score"] == 1.0
    # the agent harness: tool definitions go out with the request, the final reply is the answer
    before = len(server.requests())
    agent = cli(["eval", "--skill", str(good), "--data", str(data), "--target",
                 "openai:scripted-target", "--scorer", "exact", "--harness", "agent",
                 "--max-turns", "2", "--json"], server.base_url, tmp_path)
    assert agent.returncode == 0, agent.stderr
    assert json.loads(agent.stdout)["score"] == 1.0
    assert all(r.get("tools") for r in server.requests()[before:])
    bad = cli(["eval", "--skill", str(good), "--data", str(data), "--target",
               "openai:scripted-target", "--scorer", "exact", "--harness", "robot"],
              server.base_url, tmp_path)
    assert bad.returncode == 2 and "--harness" in bad.stderr and "robot" in bad.stderr


def test_bad_input_is_one_line_error_and_writes_nothing(tmp_path):
    data, skill = write_inputs(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "input": "x", "answer": "1"}\n{"id": "b", "input": "y"}\n')
    out = tmp_path / "run"
    proc = cli([*TRAIN, "--data", str(bad), "--skill", str(skill), "--out", str(out)],
               "http://127.0.0.1:9/v1", tmp_path)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.jsonl:2" in lines[0] and "answer" in lines[0]
    assert not out.exists()
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train:\n  epochs: many\n")
    proc = cli(["train", "--config", str(cfg), "--data", str(data)], None, tmp_path)
    assert proc.returncode == 2 and "train.epochs" in proc.stderr and "many" in proc.stderr


def test_config_file_with_flag_override(tmp_path, scripted_server):
    server = scripted_server("good")
    data, skill = write_inputs(tmp_path)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"data: {{path: {data}}}\nskill: {skill}\nscorer: exact\n"
        "target: {model: openai:scripted-target}\noptimizer: {model: openai:scripted-opt}\n"
        "train: {epochs: 3, batch_size: 6, lr: 1}\ngate: {rule: strict}\n"
    )
    out = tmp_path / "run"
    proc = cli(["train", "--config", str(cfg), "--epochs", "1", "--max-steps", "1", "--out",
                str(out), "--quiet"], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = (out / "config.yaml").read_text()
    assert "epochs: 1" in saved and "max_steps: 1" in saved
    assert json.loads((out / "summary.json").read_text())["steps"]["total"] == 1


def test_default_search_over_http_screens_out_the_harmful_proposal(tmp_path, scripted_server):
    """The default step over real HTTP: several proposals, each screened on the train batch
    against the incumbent's rollouts; only the best goes to the gate, the worse are remembered."""
    server = scripted_server("harmful,good")
    data, skill = write_inputs(tmp_path)
    out = tmp_path / "run"
    search = [a for a in TRAIN if a not in ("--no-screen", "--no-demonstrations")]
    search[search.index("--proposals") + 1] = "2"
    proc = cli([*search, "--data", str(data), "--skill", str(skill), "--out", str(out)],
               server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best
    assert summary["test"]["best"] > summary["test"]["initial"]
    assert summary["candidates"]["screened_out"] >= 1
    screen = json.loads((out / "steps/e01-s001/screen.json").read_text())
    chosen = [c for c in screen["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["screen"]["delta"] > 0
    assert any(GOOD_RULE in e["content"] for e in chosen[0]["edits"])
    gate = json.loads((out / "steps/e01-s001/gate.json").read_text())
    assert gate["candidate"] == chosen[0]["name"] and gate["accepted"]
    state = json.loads((out / "state.json").read_text())
    assert HARMFUL_RULE in json.dumps(state["rejected"])


def test_demo_command_wiring_over_http(tmp_path, scripted_server):
    """The demo's settings (2 steps here, the default search: several proposals, screening,
    a worked-examples candidate) reach a real server; the local models are exercised by
    tests/e2e/test_local_train.py."""
    server = scripted_server("good")
    out = tmp_path / "demo"
    proc = cli(["demo", "--target", "openai:scripted-target", "--optimizer",
                "openai:scripted-opt", "--steps", "2", "--out", str(out), "--quiet"],
               server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "before / after" in proc.stdout and "best_skill.md" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["total"] == 2  # the scripted target cannot do dates: wiring only
    def schema(r: dict) -> str | None:
        return (r.get("response_format") or {}).get("json_schema", {}).get("name")

    analysts = [r for r in server.requests() if schema(r) == "AnalystReply"]
    rules = [r for r in server.requests() if schema(r) == "RuleReply"]
    assert len(analysts) == 2 and len(rules) == 2 * 3  # three rule proposals per step
    assert sorted(r["temperature"] for r in rules) == [0.0] * 2 + [0.8] * 4
    screen = json.loads((out / "steps/e01-s001/screen.json").read_text())
    names = [c["name"] for c in screen["candidates"]]
    assert "examples" in names and all("screen" in c for c in screen["candidates"])


def test_answer_form_candidate_over_http(tmp_path, scripted_server):
    """Answers that hold the right number inside a sentence: the engine's answer-format
    candidate reaches the real server's target, passes the screen and the gate, and says so."""
    server = scripted_server("none", ["--follows-form"])
    data, skill = write_inputs(tmp_path)
    out = tmp_path / "run"
    args = [a for a in TRAIN if a != "--no-screen"]
    proc = cli([*args, "--data", str(data), "--skill", str(skill), "--out", str(out)],
               server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["candidates"]["chosen"].get("form") == 1
    assert summary["test"]["best"] == 1.0 > summary["test"]["initial"]
    assert "## Answer format" in (out / "best_skill.md").read_text()
