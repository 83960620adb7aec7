"""Runs people can trust: kill -9 and resume, replay from the cache, budget stops, and faults
from the endpoint, all through the real CLI against our scripted HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted import GOOD_RULE, make_tasks

SKILL = ("---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n")
VOLATILE = {"wall_s", "cache_hits", "billed_cost_usd", "best_skill"}


def env_for(base_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-test")
    return env


def inputs(tmp: Path) -> tuple[Path, Path, Path]:
    data = tmp / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    skill = tmp / "SKILL.md"
    skill.write_text(SKILL)
    cfg = tmp / "run.yaml"
    cfg.write_text(
        f"data: {{path: {data}}}\nskill: {skill}\nscorer: exact\n"
        "target: {model: openai:scripted-target, retry_backoff: 0.01, timeout: 1.0}\n"
        "optimizer: {model: openai:scripted-opt, retry_backoff: 0.01, timeout: 1.0}\n"
        "train: {epochs: 2, batch_size: 4, lr: 2, slow_update_samples: 6, proposals: 0,\n"
        "        screen: false, demonstrations: false}\n"
        "gate: {rule: strict}\n")
    return data, skill, cfg


def train_cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "skilltrain.cli", "train", "--config", str(cfg), "--out",
            str(out), "--quiet", *extra]


def comparable(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    for key in VOLATILE:
        summary.pop(key, None)
    skills = {p.name: p.read_text() for p in sorted((out / "skills").glob("*.md"))}
    gates = {}
    for g in sorted((out / "steps").glob("*/gate.json")):
        d = json.loads(g.read_text())
        gates[g.parent.name] = (d["accepted"], d["candidate_score"], d["incumbent_score"])
    state = json.loads((out / "state.json").read_text())
    rejected = [(e["step"], [x["content"] for x in e["edits"]]) for e in state["rejected"]]
    return {"summary": summary, "skills": skills, "gates": gates, "rejected": rejected,
            "best": (out / "best_skill.md").read_text()}


def wait_for_event(events: Path, kind: str, nth: int, proc: subprocess.Popen, limit: float
                   ) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if events.exists():
            seen = 0
            for line in events.read_text().splitlines():
                try:
                    seen += json.loads(line)["event"] == kind
                except json.JSONDecodeError:
                    continue
            if seen >= nth:
                return True
        time.sleep(0.005)
    return False


# (event, nth occurrence): the kill lands in the stage after that event
KILL_POINTS = [("start", 1), ("step_start", 1), ("rollout", 1), ("reflect", 2),
               ("aggregate", 3), ("select", 2), ("update", 4), ("gate", 1), ("step_end", 3),
               ("epoch_boundary", 1), ("meta_skill", 1), ("step_start", 5), ("epoch_end", 2)]


def test_kill_minus_9_anywhere_then_resume_matches_uninterrupted(tmp_path, scripted_server):
    server = scripted_server("auto", ["--latency", "0.01"])
    _, _, cfg = inputs(tmp_path)
    env = env_for(server.base_url)
    reference = tmp_path / "reference"
    done = subprocess.run(train_cmd(cfg, reference), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    expected = comparable(reference)
    assert expected["summary"]["steps"]["accepted"] >= 1
    assert expected["summary"]["steps"]["rejected"] >= 1
    killed_in = []
    for i, (kind, nth) in enumerate(KILL_POINTS):
        out = tmp_path / f"killed{i}"
        proc = subprocess.Popen(train_cmd(cfg, out), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        hit = wait_for_event(out / "events.jsonl", kind, nth, proc, 120)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert hit, f"run ended before {kind} #{nth}"
        assert proc.returncode == -signal.SIGKILL, f"{kind} #{nth}: run finished before kill"
        killed_in.append(kind)
        resumed = subprocess.run([sys.executable, "-m", "skilltrain.cli", "resume", str(out),
                                  "--quiet"], env=env, capture_output=True, text=True,
                                 timeout=300)
        if not (out / "state.json").exists():  # killed before the first checkpoint
            assert resumed.returncode != 0 or (out / "summary.json").exists()
            resumed = subprocess.run(train_cmd(cfg, out), env=env, capture_output=True,
                                     text=True, timeout=300)
        assert resumed.returncode == 0, f"{kind} #{nth}: {resumed.stderr}"
        assert comparable(out) == expected, f"resume after kill at {kind} #{nth} diverged"
    assert len(killed_in) >= 10


def test_replay_reproduces_without_network_and_names_a_miss(tmp_path, scripted_server):
    server = scripted_server("auto")
    _, skill, cfg = inputs(tmp_path)
    first = tmp_path / "first"
    proc = subprocess.run(train_cmd(cfg, first), env=env_for(server.base_url),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    server.stop()
    dead = env_for(server.base_url)  # nothing listens there any more
    replay = tmp_path / "replay"
    proc = subprocess.run(train_cmd(cfg, replay, "--replay", "--cache",
                                    str(first / "run.sqlite")),
                          env=dead, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert comparable(replay) == comparable(first)
    other = tmp_path / "other.md"
    other.write_text(SKILL + "Be brief.\n")
    miss = tmp_path / "miss"
    proc = subprocess.run(train_cmd(cfg, miss, "--replay", "--cache", str(first / "run.sqlite"),
                                    "--skill", str(other)),
                          env=dead, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "replay: no cached reply for target/rollout" in proc.stderr
    assert "What is" in proc.stderr  # the request is named


def test_budget_stop_still_writes_summary_and_best_skill(tmp_path, scripted_server):
    server = scripted_server("good")
    _, _, cfg = inputs(tmp_path)
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(cfg, out, "--max-calls", "30"),
                          env=env_for(server.base_url), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] and "call limit" in summary["stopped"]
    assert summary["steps"]["total"] < 6
    assert (out / "best_skill.md").read_text().startswith("---\nname: adder")
    assert "estimate" in proc.stderr and "stopping" not in proc.stdout


@pytest.mark.parametrize("rate", [0.2])
def test_faults_are_retried_counted_and_never_scored_wrong(tmp_path, scripted_server, rate):
    clean = scripted_server("auto")
    _, _, cfg = inputs(tmp_path)
    reference = tmp_path / "reference"
    proc = subprocess.run(train_cmd(cfg, reference), env=env_for(clean.base_url),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    faulty = scripted_server("auto", ["--faults", str(rate), "--delay", "1.5", "--seed", "7"])
    out = tmp_path / "faulty"
    proc = subprocess.run(train_cmd(cfg, out), env=env_for(faulty.base_url),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    injected = json.loads(Path(str(faulty.log) + ".faults.json").read_text())
    assert sum(injected.values()) >= 10
    seen = summary["infra_failures"]["retried"]
    final = summary["infra_failures"]["by_kind"]
    counted = {k: seen.get(k, 0) + final.get(k, 0) for k in set(seen) | set(final)}
    names = {"429": "rate_limit", "500": "server_error", "delay": "timeout",
             "truncated": "bad_response", "empty": "empty_reply"}
    for kind, n in injected.items():
        assert counted.get(names[kind], 0) == n, (kind, injected, counted)
    # with every fault retried, the scores are exactly the fault-free run's
    ref = json.loads((reference / "summary.json").read_text())
    assert summary["val"] == ref["val"] and summary["test"] == ref["test"]
    assert GOOD_RULE in (out / "best_skill.md").read_text()
