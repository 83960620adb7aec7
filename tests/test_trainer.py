"""The training loop end to end with an in-process fake model (no network)."""

from __future__ import annotations

import json
import re

import pytest
from scripted import GOOD_RULE, HARMFUL_RULE, Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.models.fake import FakeModel
from skilltrain.store import read_events

PAPER = {"proposals": 0, "screen": False, "demonstrations": False,
         "answer_form": False,
         "analyse_successes": True}  # the paper's loop

START = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"


def run(tmp_path, plan, **overrides):
    script = Script(analyst_plan=plan)
    model = FakeModel(script.respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2, "lr_min": 1,
                        **PAPER}}
    trainer = Trainer(config, target=model, optimizer=model, **overrides)
    trainer.fit(make_tasks(24), Skill(START))
    return trainer, script


def analyst_prompts(script):
    return [r["messages"][-1]["content"] for r in script.requests
            if (r.get("response_format") or {}).get("json_schema", {}).get("name")
            == "AnalystReply" and "got wrong" in r["messages"][-1]["content"]]


def test_good_edit_accepted_harmful_rejected_and_remembered(tmp_path):
    trainer, script = run(tmp_path, ["harmful", "good"])
    s = trainer.summary_
    assert s["steps"]["accepted"] == 1 and s["steps"]["rejected"] == 1
    assert s["val"]["initial"] == 0.0 and s["val"]["best"] == 1.0
    assert s["test"]["initial"] == 0.0 and s["test"]["best"] == 1.0
    assert GOOD_RULE in trainer.best_skill_.text
    assert HARMFUL_RULE not in trainer.best_skill_.text
    prompts = analyst_prompts(script)
    assert HARMFUL_RULE not in prompts[0].split("## Your job")[0].split("</skill>")[1]
    assert "did NOT help" in prompts[1] and HARMFUL_RULE in prompts[1]


def test_run_folder_is_complete(tmp_path):
    trainer, _ = run(tmp_path, ["harmful", "good"])
    root = trainer.run_dir_
    for name in ("config.yaml", "events.jsonl", "best_skill.md", "summary.json",
                 "skills/v0000.md", "skills/v0001.md", "state.json"):
        assert (root / name).is_file(), name
    assert (root / "best_skill.md").read_text() == trainer.best_skill_.text
    steps = sorted(p.name for p in (root / "steps").iterdir())
    assert steps == ["e01-s001", "e01-s002"]
    gate = json.loads((root / "steps/e01-s001/gate.json").read_text())
    assert gate["accepted"] is False and gate["candidate_score"] < gate["incumbent_score"] + 1e-9
    sel = json.loads((root / "steps/e01-s002/selection.json").read_text())
    assert [e["status"] for e in sel["edits"]] == ["applied"]
    summary = json.loads((root / "summary.json").read_text())
    for role in ("target", "optimizer"):
        assert summary["usage"][role]["calls"] > 0
        assert summary["usage"][role]["prompt_tokens"] > 0
    assert summary["infra_failures"]["total"] == 0
    events = [json.loads(line)["event"] for line in (root / "events.jsonl").read_text()
              .splitlines()]
    assert events[0] == "start" and events[-1] == "end"
    assert events.count("gate") == 2


def test_no_skill_item_scored_twice(tmp_path):
    _, script = run(tmp_path, ["harmful", "good"])
    targets = [(r["messages"][0]["content"] if r["messages"][0]["role"] == "system" else "",
                r["messages"][-1]["content"]) for r in script.requests
               if "response_format" not in r]
    assert len(targets) == len(set(targets))


def test_nothing_proposed_means_skipped_steps(tmp_path):
    trainer, _ = run(tmp_path, ["none"])
    assert trainer.summary_["steps"] == {"total": 2, "accepted": 0, "rejected": 0, "screened": 0,
                                         "skipped": 2}
    assert trainer.best_skill_.text == START


def test_infra_failures_are_not_wrong_answers(tmp_path):
    from skilltrain.data import split_tasks, tasks_from_objects
    from skilltrain.models.base import ModelError

    tasks = make_tasks(24)
    val_id = split_tasks(tasks_from_objects(tasks), (0.5, 0.25, 0.25), 0).val[0].id
    question = next(t["input"] for t in tasks if t["id"] == val_id)
    script = Script(analyst_plan=["good"])
    calls = {"n": 0}

    def flaky(request):
        if "response_format" not in request and request["messages"][-1]["content"] == question:
            calls["n"] += 1
            return ModelError("server_error", "HTTP 503")
        return script.respond(request)

    model = FakeModel(flaky)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "target": {"model": "fake", "retries": 1, "retry_backoff": 0.001},
              "train": {"epochs": 1, "batch_size": 24, "lr": 1, "lr_min": 1, **PAPER}}
    trainer = Trainer(config, target=model, optimizer=model).fit(tasks, Skill(START))
    s = trainer.summary_
    assert calls["n"] >= 2  # retried before giving up
    assert s["infra_failures"]["by_kind"]["server_error"] >= 1
    # the failing validation item is excluded, not scored as wrong: the good skill stays at 1.0
    assert s["val"] == {"initial": 0.0, "best": 1.0, "final": 1.0}
    assert s["steps"]["accepted"] == 1


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_analysts_are_told_the_scheduled_budget(tmp_path, schedule):
    _, script = run(tmp_path, ["none"], **{"train.lr": 4, "train.lr_min": 2,
                                           "train.lr_schedule": schedule, "train.epochs": 2})
    budgets = [int(re.search(r"at most (\d+) edits", p).group(1)) for p in analyst_prompts(script)]
    assert budgets[0] == 4
    assert budgets[-1] == (4 if schedule == "constant" else 2)


def test_a_failed_analyst_call_is_recorded_with_its_reason(tmp_path):
    from skilltrain.models.base import ModelError

    script = Script(analyst_plan=["good"])

    def too_long(request):
        fmt = (request.get("response_format") or {}).get("json_schema") or {}
        if fmt.get("name") == "AnalystReply":
            return ModelError("http_error", "HTTP 400: the request exceeds the context size")
        return script.respond(request)

    model = FakeModel(too_long)
    config = {"out": str(tmp_path / "run"), "scorer": "exact",
              "optimizer": {"model": "fake", "retries": 0},
              "train": {"epochs": 1, "batch_size": 24, "lr": 1, "lr_min": 1, **PAPER}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    assert trainer.summary_["steps"]["skipped"] == 1
    assert trainer.summary_["infra_failures"]["by_kind"]["http_error"] >= 1
    analysts = json.loads((tmp_path / "run/steps/e01-s001/analysts.json").read_text())
    assert analysts["failed_calls"] >= 1
    assert any("http_error" in e and "context size" in e for e in analysts["errors"])
    # and the progress line says so, with the reason
    from skilltrain.console import Progress

    event = next(e for e in read_events(tmp_path / "run/events.jsonl") if e["event"] == "reflect")
    line = Progress(quiet=True)._line("reflect", event)
    n = analysts["failed_calls"]  # every minibatch's analyst
    said = f"{n} analyst call failed" if n == 1 else f"{n} analyst calls failed"
    assert said in line and "context size" in line


def test_a_gate_object_is_used_as_given_and_its_decisions_are_recorded(tmp_path):
    """Trainer(gate=...) takes a gate like it takes models and a scorer: here one that rejects
    everything; the good edit the strict gate would accept stays out and is remembered."""
    from skilltrain.gate import Decision

    class NoGate:
        name = "never"

        def __init__(self):
            self.calls = []

        async def decide(self, candidate, incumbent, items, evaluate):
            self.calls.append((candidate.hash, incumbent.hash, len(items)))
            return Decision(accepted=False, rule=self.name, candidate_score=0.0,
                            incumbent_score=0.0, items_used=0, new_evaluations=0, excluded=0,
                            stopped_early=False, reason="never accepts")

    gate = NoGate()
    trainer, _ = run(tmp_path, ["good"], gate=gate)
    val = trainer.summary_["sizes"]["val"]
    assert gate.calls and all(n == val for _, _, n in gate.calls)  # the whole val split
    assert GOOD_RULE not in trainer.best_skill_.text
    assert trainer.summary_["steps"]["accepted"] == 0
    assert trainer.summary_["steps"]["rejected"] == len(gate.calls)
    state = json.loads((tmp_path / "run/state.json").read_text())
    assert GOOD_RULE in json.dumps(state["rejected"])
    gates = [json.loads(p.read_text()) for p in (tmp_path / "run/steps").glob("*/gate.json")]
    assert gates and {g["reason"] for g in gates} == {"never accepts"}
