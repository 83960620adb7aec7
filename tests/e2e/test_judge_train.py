"""`skilltrain train --scorer judge:MODEL` over HTTP: the judge is a third role served by the
scripted server, tasks carry their own rubric, and no optimizer request holds the rubric."""

from __future__ import annotations

import json
import re

from scripted import BARE_CRITERION, GOOD_RULE, JUDGE_FEEDBACK, POLITE_CRITERION, make_tasks

from .test_cli_train import SECRET, SKILL, TRAIN, cli


def test_train_with_a_judge_scorer_over_http(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps({**t, "rubric": [BARE_CRITERION, POLITE_CRITERION]})
                            + "\n" for t in make_tasks(24)))
    skill = tmp_path / "SKILL.md"
    skill.write_text(SKILL)
    out = tmp_path / "run"
    args = [a if a != "exact" else "judge:openai:scripted-judge" for a in TRAIN]
    proc = cli([*args, "--data", str(data), "--skill", str(skill), "--out", str(out)],
               server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["accepted"] == 1
    assert summary["val"]["best"] > summary["val"]["initial"]
    assert summary["usage"]["judge"]["calls"] > 0  # its own line in usage and cost
    assert "judge/judge" in summary["usage_by_stage"]
    assert GOOD_RULE in (out / "best_skill.md").read_text()
    requests = server.requests()
    judged = [r for r in requests if r["model"] == "scripted-judge"]
    assert judged and all(r["response_format"]["json_schema"]["name"] == "JudgeReply"
                          for r in judged)
    optimizer = [r for r in requests if r["model"] == "scripted-opt"]
    assert optimizer and any(JUDGE_FEEDBACK in json.dumps(r) for r in optimizer)
    for request in optimizer:
        assert "rubric-secret" not in json.dumps(request)
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_judge_without_a_rubric_fails_before_any_call(tmp_path, scripted_server):
    server = scripted_server()
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    args = [a if a != "exact" else "judge:openai:scripted-judge" for a in TRAIN]
    proc = cli([*args, "--data", str(data), "--out", str(tmp_path / "run")], server.base_url,
               tmp_path)
    assert proc.returncode == 2
    assert re.search(r"scorer judge: task 'add-\d+' has no rubric", proc.stderr), proc.stderr
    assert server.requests() == [] and not (tmp_path / "run").exists()
