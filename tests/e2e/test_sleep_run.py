"""The nightly loop after harvest, as subprocesses against the scripted HTTP server: digests ->
`sleep mine` -> `sleep run` (gated training with the rules scorer, then staging) -> `sleep
adopt` (backup) -> `sleep adopt --undo`; adopt refuses a skill edited since staging; a run whose
gate accepts nothing stages nothing; `sleep schedule` prints and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripted import GOOD_RULE, HARMFUL_RULE
from test_sleep_mine import corrected, write_digest

from e2e.test_cli_train import SECRET, SKILL
from skilltrain.sleep.mine import BARE_NUMBER

RUN = ["--target", "openai:scripted-target", "--optimizer", "openai:scripted-opt",
       "--set", "train.epochs=1", "--set", "train.batch_size=6", "--set", "train.lr=2",
       "--set", "gate.rule=strict", "--set", "train.proposals=0", "--set", "train.screen=false",
       "--set", "train.demonstrations=false", "--quiet"]


def sleep(args: list[str], tmp: Path, base_url: str | None = None
          ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["HOME"] = str(tmp / "home")  # every default folder lands in the test's own home
    if base_url:
        env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=SECRET)
    return subprocess.run([sys.executable, "-m", "skilltrain.cli", "sleep", *args], cwd=tmp,
                          env=env, capture_output=True, text=True, timeout=300)


def mined(tmp: Path) -> Path:
    digests = tmp / "home" / ".skilltrain" / "sleep" / "digests"
    for i in range(12):  # 12 sessions: 7 train, 2 val, 3 test by their ids' hashes
        write_digest(digests, f"session-{i:02d}", corrected(i))
    proc = sleep(["mine"], tmp)
    assert proc.returncode == 0, proc.stderr
    assert "mined 12 rule tasks from 12 sessions (train 7, val 2, test 3)" in proc.stdout
    return tmp / "home" / ".skilltrain" / "sleep" / "tasks"


def test_mine_run_stage_adopt_undo(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    tasks = mined(tmp_path)
    skill = tmp_path / "mine" / "SKILL.md"
    skill.parent.mkdir()
    skill.write_text(SKILL)
    proc = sleep(["run", "--skill", str(skill), "--tasks", str(tasks), *RUN], tmp_path,
                 server.base_url)
    assert proc.returncode == 0, proc.stderr
    assert skill.read_text() == SKILL  # the run never writes the user's skill
    root = tmp_path / "home" / ".skilltrain" / "sleep" / "staged"
    (staged,) = [p for p in root.iterdir() if p.is_dir()]
    assert f"staged {staged}" in proc.stdout
    evidence = json.loads((staged / "evidence.json").read_text())
    assert evidence["accepted"] == 1 and evidence["steps"]["rejected"] == 1
    assert evidence["val"]["initial"] == 0.0 and evidence["val"]["best"] == 1.0
    assert evidence["test"]["best"] > evidence["test"]["initial"]
    assert Path(evidence["run_dir"], "summary.json").is_file()
    best = (staged / "skill" / "SKILL.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best
    assert f"+{GOOD_RULE}" in (staged / "skill.diff").read_text()
    optimizer = [json.dumps(r["messages"]) for r in server.requests()
                 if r["model"] == "scripted-opt"]
    assert optimizer and not any(json.dumps(BARE_NUMBER)[1:-1] in t for t in optimizer)
    for path in [*tmp_path.joinpath("home").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    adopted = sleep(["adopt"], tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert skill.read_text() == best
    (backup,) = skill.parent.glob("SKILL.md.bak-*")
    assert backup.read_text() == SKILL
    undone = sleep(["adopt", "--undo"], tmp_path)
    assert undone.returncode == 0, undone.stderr
    assert skill.read_text() == SKILL

    skill.write_text(SKILL + "my own edit\n")
    refused = sleep(["adopt", str(staged)], tmp_path)
    assert refused.returncode == 2
    assert "changed since it was staged" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert skill.read_text() == SKILL + "my own edit\n"


def test_nothing_accepted_stages_nothing(tmp_path, scripted_server):
    server = scripted_server("none")
    tasks = mined(tmp_path)
    skill = tmp_path / "SKILL.md"
    skill.write_text(SKILL)
    stage = tmp_path / "stage"
    proc = sleep(["run", "--skill", str(skill), "--tasks", str(tasks), "--stage", str(stage),
                  *RUN], tmp_path, server.base_url)
    assert proc.returncode == 0, proc.stderr
    assert "nothing staged" in proc.stdout
    assert not stage.exists() or not any(stage.iterdir())


def test_run_without_mined_tasks_is_one_line(tmp_path):
    skill = tmp_path / "SKILL.md"
    skill.write_text(SKILL)
    proc = sleep(["run", "--skill", str(skill), "--tasks", str(tmp_path / "none")], tmp_path)
    assert proc.returncode == 2
    assert "expected train.jsonl and val.jsonl" in proc.stderr


def test_schedule_prints_and_writes_nothing(tmp_path):
    (tmp_path / "home").mkdir()
    proc = sleep(["schedule", "--skill", "/p/SKILL.md", "--hour", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    cron = [line for line in proc.stdout.splitlines() if line.startswith("0 2 * * * ")]
    assert len(cron) == 1 and "sleep mine" in cron[0] and "sleep run --skill /p/SKILL.md" \
        in cron[0]
    assert "OnCalendar=*-*-* 02:00:00" in proc.stdout
    assert not any((tmp_path / "home").iterdir())
