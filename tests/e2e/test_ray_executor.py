"""`executor: ray` end to end: a real Ray head on 127.0.0.1 (one for the module), trainings run
as subprocesses against the scripted HTTP server, compared with the same trainings run locally.

Every run gets a scripted server of its own: the server's script counts analyst calls, so two
runs on one server would not see the same replies."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from scripted import GOOD_RULE, HARMFUL_RULE, make_tasks

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="the ray extra is not installed")]

HERE = Path(__file__).resolve().parent
SECRET = "sk-test-ray-secret-key-456"
SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
TRAIN = ["train", "--target", "openai:scripted-target", "--optimizer", "openai:scripted-opt",
         "--scorer", "exact", "--epochs", "1", "--batch-size", "6", "--lr", "2",
         "--gate", "strict", "--quiet", "--proposals", "0", "--no-screen", "--no-demonstrations"]
# What must not depend on where the rollouts ran.
SAME = ("val", "test", "test_by_type", "delta", "steps", "candidates", "slow_updates", "usage",
        "usage_by_stage", "cache_hits", "best_version", "skill_tokens", "final_gate",
        "attribution")


@pytest.fixture(scope="module")
def ray_head():
    from e2e.ray_head import RayHead

    head = RayHead(num_cpus=2)
    yield head
    head.stop()


def run(args: list[str], base_url: str, cwd: Path, extra_env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "RAY_"))}
    env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=SECRET, **(extra_env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def inputs(tmp: Path) -> list[str]:
    data, skill = tmp / "tasks.jsonl", tmp / "SKILL.md"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    skill.write_text(SKILL)
    return ["--data", str(data), "--skill", str(skill)]


def outcome(out: Path) -> dict:
    """What a run decided: its summary's figures, every skill version, every gate decision."""
    summary = json.loads((out / "summary.json").read_text())
    return {"summary": {k: summary.get(k) for k in SAME},
            "infra": {k: v for k, v in summary["infra_failures"].items() if k != "retried"},
            "skills": {p.name: p.read_text() for p in sorted((out / "skills").iterdir())},
            "best": (out / "best_skill.md").read_text(),
            "gates": {p.parent.name: json.loads(p.read_text())
                      for p in sorted(out.glob("steps/*/gate.json"))}}


def test_cli_train_on_ray_gives_the_local_run(tmp_path, scripted_server, ray_head):
    args = inputs(tmp_path)
    local = run(["-m", "skilltrain.cli", *TRAIN, *args, "--out", str(tmp_path / "local")],
                scripted_server("harmful,good").base_url, tmp_path)
    assert local.returncode == 0, local.stderr
    remote = run(["-m", "skilltrain.cli", *TRAIN, *args, "--out", str(tmp_path / "ray"),
                  "--executor", "ray", "--ray-address", ray_head.address],
                 scripted_server("harmful,good").base_url, tmp_path, ray_head.env)
    assert remote.returncode == 0, remote.stderr
    mine, theirs = outcome(tmp_path / "local"), outcome(tmp_path / "ray")
    assert theirs == mine
    # the comparison compares something: the harmful edit was rejected, the good one accepted
    assert mine["summary"]["steps"]["accepted"] == 1 and mine["summary"]["steps"]["rejected"] == 1
    assert GOOD_RULE in mine["best"] and HARMFUL_RULE not in mine["best"]
    assert mine["summary"]["usage"]["target"]["calls"] > 0
    saved = (tmp_path / "ray" / "config.yaml").read_text()
    assert "kind: ray" in saved and ray_head.address in saved
    # the key reached the workers in memory only: not the run folder, not Ray's session logs
    for path in (tmp_path / "ray").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert ray_head.files_containing(SECRET) == []


def test_a_killed_worker_is_retried_elsewhere_and_counted(tmp_path, scripted_server, ray_head):
    marker = tmp_path / "die-once"
    driver = [str(HERE / "ray_driver.py")]
    local = run([*driver, str(tmp_path / "local"), "--base-url",
                 scripted_server("harmful,good").base_url], "", tmp_path)
    assert local.returncode == 0, local.stderr
    marker.write_text("")
    remote = run([*driver, str(tmp_path / "ray"), "--executor", "ray", "--address",
                  ray_head.address, "--marker", str(marker), "--base-url",
                  scripted_server("harmful,good").base_url], "", tmp_path, ray_head.env)
    assert remote.returncode == 0, remote.stderr
    assert not marker.exists()  # a task did find it, and its worker died
    assert outcome(tmp_path / "ray") == outcome(tmp_path / "local")
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    lost = summary["infra_failures"]["retried"].get("worker_lost", 0)
    assert 1 <= lost <= 4  # the tasks in flight on the dead worker (concurrency 4)
    assert summary["infra_failures"]["total"] == 0


def test_a_task_that_keeps_losing_its_worker_is_an_infra_failure_not_a_score(
        tmp_path, scripted_server, ray_head):
    from skilltrain.data import split_tasks, tasks_from_objects

    # a test item, and an optimizer that proposes nothing: the item is run for one skill only
    # (the initial one, at the end), so few workers die
    victim = split_tasks(tasks_from_objects(make_tasks(24)), (0.5, 0.25, 0.25), 0).test[0].id
    marker = tmp_path / "die-always"
    marker.write_text("")
    proc = run([str(HERE / "ray_driver.py"), str(tmp_path / "ray"), "--executor", "ray",
                "--address", ray_head.address, "--marker", str(marker), "--always", "--only",
                victim, "--workers", "1", "--concurrency", "1", "--retries", "0",
                "--no-attribution",
                "--base-url", scripted_server("none").base_url], "", tmp_path, ray_head.env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    infra = summary["infra_failures"]
    lost = infra["by_kind"].get("worker_lost", 0)
    assert lost >= 1 and infra["total"] == lost
    assert infra["retried"].get("worker_lost", 0) == 0  # retries 0: given up at once
    # never scored: the score cache holds the other items, not the victim
    con = sqlite3.connect(tmp_path / "ray" / "run.sqlite")
    scored = {row[0] for row in con.execute("SELECT DISTINCT task_id FROM scores")}
    con.close()
    assert victim not in scored and len(scored) >= 20


def test_a_cluster_that_cannot_run_the_workers_is_one_line_and_writes_nothing(
        tmp_path, scripted_server, ray_head):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("executor: {kind: ray, num_cpus: 4, concurrency: 8}\n")
    out = tmp_path / "run"
    proc = run(["-m", "skilltrain.cli", *TRAIN, *inputs(tmp_path), "--config", str(cfg),
                "--out", str(out), "--ray-address", ray_head.address],
               scripted_server().base_url, tmp_path, ray_head.env)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "num_cpus x concurrency = 32" in lines[0], proc.stderr
    assert not out.exists()
    # no cluster at the address: exit 1 (infrastructure) at once, not Ray's minutes of retries
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{free.getsockname()[1]}"
    proc = run(["-m", "skilltrain.cli", *TRAIN, *inputs(tmp_path), "--out", str(out),
                "--executor", "ray", "--ray-address", nobody], scripted_server().base_url,
               tmp_path, ray_head.env)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and nobody in lines[0] and "ray start --head" in lines[0]
    assert not out.exists()


LOCAL_CLUSTER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from e2e.ray_head import ray_listeners
from skilltrain.ray_cluster import ray_session
with ray_session() as ray:
    @ray.remote(num_cpus=0)
    def where():
        return ray.util.get_node_ip_address()
    ip = ray.get(where.remote())
    print(json.dumps({"ip": ip, "listeners": ray_listeners()}))
"""


def test_clusters_listen_on_loopback_only(ray_head):
    """The head the README's command starts, and the cluster a run starts for itself when no
    address is given: every socket a Ray process listens on is bound to 127.0.0.1."""
    from e2e.ray_head import loopback, ray_listeners

    head = ray_listeners()
    port = int(ray_head.address.rsplit(":", 1)[1])
    assert any(p == port for _, p, _ in head), head  # the GCS is among them
    assert [e for e in head if not loopback(e[0])] == []
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run([sys.executable, "-c", LOCAL_CLUSTER, str(HERE.parent)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["ip"] == "127.0.0.1"
    assert len(seen["listeners"]) >= 3  # GCS, raylet, object manager at least
    assert [e for e in seen["listeners"] if not loopback(e[0])] == []


def test_resume_may_move_a_run_onto_the_cluster(tmp_path, scripted_server, ray_head):
    """`resume --executor ray --ray-address` continues a local run on Ray: where rollouts run
    is a neutral setting, written to config.yaml; a bad value is one line, exit 2."""
    args, out = inputs(tmp_path), tmp_path / "run"
    url = scripted_server("harmful,good").base_url
    first = run(["-m", "skilltrain.cli", *TRAIN, *args, "--out", str(out)], url, tmp_path)
    assert first.returncode == 0, first.stderr
    before = outcome(out)
    bad = run(["-m", "skilltrain.cli", "resume", str(out), "--executor", "slurm"], url,
              tmp_path)
    assert bad.returncode == 2 and "executor.kind" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    moved = run(["-m", "skilltrain.cli", "resume", str(out), "--quiet", "--executor", "ray",
                 "--ray-address", ray_head.address], url, tmp_path, ray_head.env)
    assert moved.returncode == 0, moved.stderr
    saved = (out / "config.yaml").read_text()
    assert "kind: ray" in saved and ray_head.address in saved
    assert outcome(out) == before  # nothing left to run: the decisions stand
