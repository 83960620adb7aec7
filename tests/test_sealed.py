"""The sealed test split: each look at a run's test split is counted, a second one is marked."""

from __future__ import annotations

import json

import pytest
from scripted import Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.models.fake import FakeModel
from skilltrain.report import write_report
from skilltrain.sealed import TEST_LOOK, record_look, tally
from skilltrain.store import read_events

START = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
PAPER = {"proposals": 0, "screen": False, "demonstrations": False, "answer_form": False,
         "analyse_successes": True}


def test_tally_counts_occasions_and_skills_and_skips_odd_events():
    events = [
        {"event": TEST_LOOK, "who": "conclude", "skills": {"a": ["initial"], "b": ["best"]}},
        {"event": "end"},
        {"event": TEST_LOOK, "who": "eval", "skills": {"b": ["best"]}},
        {"event": TEST_LOOK, "who": "eval", "skills": "not a mapping"},
        {"event": TEST_LOOK, "who": "compare", "skills": {}},
    ]
    out = tally(events)
    assert out["test_seen"] == 2
    assert out["test_looks"]["a"] == {"count": 1, "by": {"conclude": 1}, "labels": ["initial"]}
    assert out["test_looks"]["b"]["count"] == 2
    assert out["test_looks"]["b"]["by"] == {"conclude": 1, "eval": 1}


def train(out, plan=("harmful", "good"), **extra):
    model = FakeModel(Script(analyst_plan=list(plan)).respond)
    config = {"out": str(out), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2,
                        "lr_min": 1, **PAPER}, **extra}
    return Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))


def test_one_run_looks_once_and_a_resumed_run_is_marked(tmp_path):
    root = tmp_path / "run"
    first = train(root)
    s = first.summary_
    assert s["test_seen"] == 1
    scored = {h for h, e in s["test_looks"].items() if "best" in e["labels"]}
    assert scored == {first.best_skill_.hash}
    assert all(e["count"] == 1 and e["by"] == {"conclude": 1} for e in s["test_looks"].values())
    page = write_report(root).read_text()
    assert "Test looked at once" in page and "Test seen" not in page
    again = train(root)  # a finished run resumed: it concludes, so test is scored again
    assert again.summary_["test_seen"] == 2
    assert again.summary_["test_looks"][first.best_skill_.hash]["count"] == 2
    assert "Test seen 2 times" in write_report(root).read_text()
    looks = [e for e in read_events(root / "events.jsonl") if e["event"] == TEST_LOOK]
    assert len(looks) == 2 and all(e["items"] == s["sizes"]["test"] for e in looks)


def test_a_look_from_outside_the_run_is_counted_in_the_report(tmp_path):
    root = tmp_path / "run"
    run = train(root)
    record_look(root, "eval", {run.best_skill_.hash: "best_skill.md"}, items=6)
    page = write_report(root).read_text()
    assert "Test seen 2 times" in page and "eval 1" in page
    summary = json.loads((root / "summary.json").read_text())
    assert summary["test_seen"] == 1  # written before the outside look; the events say 2
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        record_look(tmp_path / "nothing", "eval", {}, items=0)
    with pytest.raises(ValueError, match="who"):
        record_look(root, "someone", {}, items=0)


def test_a_stopped_run_never_looks_at_test(tmp_path):
    run = train(tmp_path / "run", budget={"max_calls": 8},
                train={"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2, "lr_min": 1,
                       "prune": True, **PAPER})
    s = run.summary_
    assert s["stopped"] and s["test_seen"] == 0 and s["test_looks"] == {}
    assert s["prune"] is None and s["attribution"] is None
