"""Mining digests into rule tasks (heuristics, session split, files the loader reads), staging
and adopting a skill (backup, undo, refusal when the user's skill moved on), and the printed
schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skilltrain.data import load_tasks
from skilltrain.records import Rollout
from skilltrain.rules import RuleJudge
from skilltrain.sleep import digest as digests
from skilltrain.sleep import mine as mining
from skilltrain.sleep import staging
from skilltrain.sleep.schedule import render
from skilltrain.sleep.transcripts import Session


def write_digest(folder: Path, sid: str, turns: list[tuple[str, str]],
                 source: str = "claude-code") -> None:
    session = Session(sid, source, f"/x/{sid}.jsonl", "/home/u/proj",
                      [{"role": r, "text": t, "time": ""} for r, t in turns])
    record, _ = digests.digest(session)
    digests.write(folder, record)


def corrected(i: int) -> list[tuple[str, str]]:
    return [("user", f"What is {i} plus {i + 3}?"), ("assistant", f"The answer is {2 * i + 3}."),
            ("user", "No, don't write 'The answer is', give only the number.")]


def rollout(task, answer: str) -> Rollout:
    return Rollout(task_id=task.id, skill_hash="h", sample=0, answer=answer, trajectory=[])


def test_rules_from_feedback_reads_quotes_and_cues():
    rules = mining.rules_from_feedback(
        "No, use `pytest -q` instead of \"unittest\"; make it shorter.", "x" * 100)
    assert {"contains": "pytest -q"} in rules and {"not_contains": "unittest"} in rules
    assert {"max_chars": 50} in rules
    assert {"section_present": "Summary"} in mining.rules_from_feedback(
        "Wrong: add a Summary section", "text")
    assert mining.rules_from_feedback("don't say 'sorry'", "a")[0] == {"not_contains": "sorry"}
    assert mining.rules_from_feedback("try again", "an answer") == []


def test_mine_makes_rule_tasks_the_loader_and_rules_scorer_read(tmp_path):
    dig = tmp_path / "digests"
    for i in range(12):
        write_digest(dig, f"session-{i:02d}", corrected(i))
    write_digest(dig, "accepted", [("user", "List the files"), ("assistant", "a.py b.py"),
                                   ("user", "Thanks, now what is 2 plus 2?"),
                                   ("assistant", "4")])
    write_digest(dig, "vague", [("user", "Explain X"), ("assistant", "X is..."),
                                ("user", "try again")])
    write_digest(dig, "refused", [("user", "Summarise the log"),
                                  ("assistant", "I can't do that."), ("user", "try again")])
    result = mining.mine(dig)
    assert result.sessions == 15
    assert result.skipped["accepted"] == 2 and result.skipped["no_rule"] == 1
    ids = {t["session"] for t in result.tasks}
    assert ids == {f"session-{i:02d}" for i in range(12)} | {"refused"}
    refused = next(t for t in result.tasks if t["session"] == "refused")
    assert refused["rules"] == [{"no_refusal": True}]
    out = tmp_path / "tasks" / "tasks.jsonl"
    mining.write_tasks(result, out)
    every = load_tasks(out)
    assert len(every) == len(result.tasks)
    split_sessions = {}
    for name in mining.SPLITS:
        text = (out.parent / f"{name}.jsonl").read_text()
        rows = [json.loads(line) for line in text.splitlines()]
        for row in rows:  # the split is the session's hash's, never per turn
            assert row["split"] == name == mining.split_of(row["session"])
            split_sessions.setdefault(row["session"], set()).add(name)
    assert all(len(s) == 1 for s in split_sessions.values())
    assert len(split_sessions) == len(ids)
    task = next(t for t in every if t.meta["session"] == "session-03")
    assert task.input.startswith("What is 3 plus 6?") and task.meta["kind"] == "rule"
    judge = RuleJudge()
    assert judge.score(task, rollout(task, "The answer is 9.")).hard == 0.0
    assert judge.score(task, rollout(task, "9")).hard == 1.0
    assert not any(t.meta["session"] in ("accepted", "vague") for t in every)


def test_context_excerpt_follows_the_request(tmp_path):
    dig = tmp_path / "d"
    write_digest(dig, "ctx", [("user", "We use tabs here."), ("assistant", "Noted."),
                              ("user", "Format main.py"), ("assistant", "Done with spaces."),
                              ("user", "No, use 'tabs' not 'spaces'.")])
    (task,) = mining.mine(dig).tasks
    assert task["input"].startswith("Format main.py\n\nContext")
    assert "We use tabs here." in task["input"]
    assert {"contains": "tabs"} in task["rules"] and {"not_contains": "spaces"} in task["rules"]


def test_a_bad_digest_is_one_line_naming_it(tmp_path):
    (tmp_path / "x.json").write_text('{"id": 3}')
    with pytest.raises(mining.MineError, match="x.json: expected a digest"):
        mining.mine(tmp_path)
    with pytest.raises(mining.MineError, match="no such folder"):
        mining.mine(tmp_path / "nope")


def test_stage_adopt_undo_and_refusal(tmp_path):
    skill = tmp_path / "SKILL.md"
    skill.write_text("# Mine\nold\n")
    best = tmp_path / "best.md"
    best.write_text("# Mine\nnew\n")
    staged = staging.stage(skill, best, {"accepted": 1}, tmp_path / "staged")
    assert "-old" in (staged / "skill.diff").read_text()
    assert "+new" in (staged / "skill.diff").read_text()
    assert staging.latest(tmp_path / "staged") == staged
    path, backup = staging.adopt(staged)
    assert path == skill.resolve() and skill.read_text() == "# Mine\nnew\n"
    assert backup.read_text() == "# Mine\nold\n" and backup.name.startswith("SKILL.md.bak-")
    assert staging.latest(tmp_path / "staged", adopted=True) == staged
    staging.undo(staged)
    assert skill.read_text() == "# Mine\nold\n"
    skill.write_text("# Mine\nedited by hand\n")
    with pytest.raises(staging.StageError, match="changed since it was staged"):
        staging.adopt(staged)
    assert skill.read_text() == "# Mine\nedited by hand\n"


def test_a_package_folder_is_staged_and_adopted_whole(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "scripts").mkdir(parents=True)
    (pkg / "SKILL.md").write_text("old\n")
    (pkg / "scripts" / "a.py").write_text("print(1)\n")
    best = tmp_path / "best"
    (best / "scripts").mkdir(parents=True)
    (best / "SKILL.md").write_text("new\n")
    (best / "scripts" / "a.py").write_text("print(1)\n")
    staged = staging.stage(pkg, best, {}, tmp_path / "st")
    assert "staged/SKILL.md" in (staged / "skill.diff").read_text()
    _, backup = staging.adopt(staged)
    assert (pkg / "SKILL.md").read_text() == "new\n" and (backup / "SKILL.md").read_text() == \
        "old\n"
    staging.undo(staged)
    assert (pkg / "SKILL.md").read_text() == "old\n"
    assert (pkg / "scripts" / "a.py").read_text() == "print(1)\n"


def test_schedule_prints_cron_and_systemd_for_the_nightly_chain():
    text = render("skilltrain", "/home/u/my skill/SKILL.md", "--quiet", hour=4, minute=30)
    cron = next(line for line in text.splitlines() if line.startswith("30 4 * * *"))
    assert "sleep harvest && skilltrain sleep mine && skilltrain sleep run" in cron
    assert "'/home/u/my skill/SKILL.md'" in cron
    assert "OnCalendar=*-*-* 04:30:00" in text and "ExecStart=/bin/sh -c" in text
    assert "[Install]\nWantedBy=timers.target" in text
