"""Search, screening, demonstrations and adaptation: the step as several candidates."""

from __future__ import annotations

import asyncio
import json

from scripted import GOOD_RULE, HARMFUL_RULE, Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.data import Task
from skilltrain.models.fake import FakeModel
from skilltrain.optim.examples import (
    EXAMPLES_REGION,
    ExampleBudget,
    current_examples,
    propose_examples,
    quoted_items,
)
from skilltrain.records import Rollout, Score
from skilltrain.screening import ScreenResult, screen_one

START = "# Arithmetic\n\nAnswer the question.\n"


def tasks(n: int, kinds: tuple[str, ...] = ("a", "b")) -> list[Task]:
    return [Task(id=f"t{i}", input=f"question number {i} about {kinds[i % len(kinds)]}",
                 answer=f"A{i}", type=kinds[i % len(kinds)]) for i in range(n)]


def test_examples_block_is_built_from_references_outside_the_batch_failure_types_first():
    train = tasks(20, ("a", "b", "c"))
    batch, failed = train[:6], [t for t in train[:6] if t.type == "b"]
    skill = propose_examples(Skill(START), train, batch, failed, seed=0,
                             budget=ExampleBudget(max_examples=3))
    assert skill is not None
    held = current_examples(skill, train)
    assert len(held) == 3 and all(t.type == "b" for t in held)
    assert not {t.id for t in held} & {t.id for t in batch}
    block = skill.region(EXAMPLES_REGION)
    for t in held:  # correct by construction: each input is followed by its own reference
        assert f"Input: {t.input}\nAnswer: {t.answer}" in block
    assert skill.text.startswith(START.rstrip())  # the body is untouched
    assert propose_examples(Skill(START), train, batch, [], seed=0) is None


def test_examples_block_respects_its_size_budget_and_skips_long_items():
    train = tasks(10) + [Task(id="long", input="x " * 400, answer="y", type="a")]
    skill = propose_examples(Skill(START), train, train[:2], train[:2], seed=1,
                             budget=ExampleBudget(max_examples=8, max_chars=200))
    assert skill is not None
    assert len(skill.region(EXAMPLES_REGION)) <= 200
    assert "long" not in {t.id for t in current_examples(skill, train)}


def test_a_refreshed_block_keeps_examples_and_step_edits_cannot_touch_it():
    train = tasks(30)
    first = propose_examples(Skill(START), train, train[:4], train[:4], seed=0,
                             budget=ExampleBudget(max_examples=4))
    second = propose_examples(first, train, train[4:8], train[4:6], seed=0,
                              budget=ExampleBudget(max_examples=6))
    assert second is not None
    assert {t.id for t in current_examples(first, train)} <= {
        t.id for t in current_examples(second, train)}
    from skilltrain.skill import Edit, EditStatus

    inside = current_examples(first, train)[0].input
    _, (result,) = first.apply([Edit(op="replace", target=inside, content="changed")])
    assert result.status is EditStatus.PROTECTED_REGION
    assert quoted_items(first, train) == {t.id for t in current_examples(first, train)}


class _Eval:
    def __init__(self, right: dict[str, set[str]]):
        self.right = right  # skill text marker -> ids it answers right
        self.asked: list[str] = []

    async def rollouts(self, skill, tasks, sample=0):
        out = []
        for t in tasks:
            self.asked.append(t.id)
            ok = any(mark in skill.text and t.id in ids for mark, ids in self.right.items())
            out.append(Rollout(task_id=t.id, skill_hash=skill.hash,
                               score=Score(hard=float(ok), soft=float(ok))))
        return out

    def value(self, r):
        return r.score.hard if r.score else None


def test_screening_pairs_with_the_incumbents_rollouts_and_leaves_quoted_items_out():
    batch = tasks(4)
    incumbent = [Rollout(task_id=t.id, skill_hash="inc", score=Score(hard=float(i == 0),
                 soft=0.0)) for i, t in enumerate(batch)]
    ev = _Eval({"GOOD": {"t0", "t1", "t2"}, "BAD": set()})
    good = asyncio.run(screen_one(ev, 0, Skill("GOOD"), batch, incumbent, {"t3"}))
    bad = asyncio.run(screen_one(ev, 1, Skill("BAD"), batch, incumbent, set()))
    assert "t3" not in ev.asked[:3] and good.items == 3 and good.left_out == 1
    assert good.passed and round(good.delta, 3) == 0.667
    assert not bad.passed and bad.delta < 0
    assert ScreenResult([bad, good]).best is good
    tie = asyncio.run(screen_one(ev, 2, Skill("NONE"), batch[1:], incumbent[1:], set()))
    assert not tie.passed  # fixing nothing is not a pass


def test_screening_stops_a_candidate_that_fixes_nothing_in_the_first_half():
    batch = tasks(8)
    incumbent = [Rollout(task_id=t.id, skill_hash="inc", score=Score(hard=0.0, soft=0.0))
                 for t in batch]
    ev = _Eval({"LATE": {"t6", "t7"}})
    late = asyncio.run(screen_one(ev, 0, Skill("LATE"), batch, incumbent, set()))
    assert late.stopped_early and late.items == 4 and ev.asked == [t.id for t in batch[:4]]
    ev = _Eval({"EARLY": {"t1"}})
    early = asyncio.run(screen_one(ev, 0, Skill("EARLY"), batch, incumbent, set()))
    assert not early.stopped_early and early.items == 8 and early.passed


def run(tmp_path, plan, **train):
    script = Script(analyst_plan=plan)
    model = FakeModel(script.respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 6, "lr": 1, "lr_min": 1,
                        "demonstrations": False, "answer_form": False, **train}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    return trainer, model


def test_the_best_screened_proposal_is_gated_and_the_rest_are_remembered(tmp_path):
    trainer, model = run(tmp_path, ["harmful", "good"], proposals=2, lr=2)
    assert GOOD_RULE in trainer.best_skill_.text and HARMFUL_RULE not in trainer.best_skill_.text
    screen = json.loads((tmp_path / "run/steps/e01-s001/screen.json").read_text())
    rows = {r["name"]: r for r in screen["candidates"]}
    assert set(rows) == {"merged", "rule-1"}  # rule-2 said the same: one candidate
    assert not rows["merged"]["screen"]["passed"]  # the full analyst proposed the harmful rule
    assert rows["rule-1"]["chosen"] and rows["rule-1"]["screen"]["passed"]
    gate = json.loads((tmp_path / "run/steps/e01-s001/gate.json").read_text())
    assert gate["candidate"] == "rule-1" and gate["accepted"]
    state = json.loads((tmp_path / "run/state.json").read_text())
    remembered = json.dumps(state["rejected"])
    assert HARMFUL_RULE in remembered and "screened out" in remembered
    s = trainer.summary_
    assert s["steps"]["accepted"] == 1 and s["candidates"]["screened_out"] >= 1
    assert s["candidates"]["chosen"] == {"rule-1": 1}


def test_a_step_where_no_candidate_beats_the_incumbent_costs_no_gate_pass(tmp_path):
    trainer, model = run(tmp_path, ["harmful"], proposals=1)
    steps = trainer.summary_["steps"]
    assert steps["total"] == 2 and steps["screened"] == 2 and steps["rejected"] == 0
    assert not (tmp_path / "run/steps/e01-s001/gate.json").exists()


def test_val_and_test_items_never_reach_an_optimizer_prompt(tmp_path):
    trainer, model = run(tmp_path, ["harmful", "good"], proposals=3, demonstrations=True,
                         analyse_successes=True)
    splits_file = tmp_path / "run/steps"
    assert splits_file.is_dir()
    from skilltrain.data import split_tasks, tasks_from_objects

    splits = split_tasks(tasks_from_objects(make_tasks(24)), (0.5, 0.25, 0.25), 0)
    train, val, test = splits.train, splits.val, splits.test
    optimizer_prompts = [json.dumps(r["messages"]) for r in model.requests
                         if r.get("response_format")]
    assert optimizer_prompts
    for t in [*val, *test]:
        assert all(t.input not in p for p in optimizer_prompts), t.id
    assert any(t.input in p for t in train for p in optimizer_prompts)


def test_anchors_that_keep_missing_narrow_the_edit_operations(tmp_path):
    def respond(request):
        fmt = (request.get("response_format") or {}).get("json_schema") or {}
        if fmt.get("name") == "AnalystReply":
            return json.dumps({"patterns": "p", "rule": "", "edits": [
                {"op": "replace", "target": f"no such line {i} in the skill at all",
                 "content": GOOD_RULE, "support": 1} for i in range(2)]})
        return Script().respond(request)

    model = FakeModel(respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact",
              "train": {"epochs": 1, "batch_size": 6, "lr": 2, "demonstrations": False,
                        "proposals": 1}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    (change,) = trainer.summary_["adaptations"]
    assert change["step"] == 1 and change["change"] == "edit_ops: append only"
    assert "anchored edits did not land" in change["why"]
    analysts = [r for r in model.requests if (r.get("response_format") or {}).get(
        "json_schema", {}).get("name") == "AnalystReply"]
    last = json.dumps(analysts[-1]["response_format"]["json_schema"]["schema"])
    assert '"replace"' not in last and '"append"' in last
    state = json.loads((tmp_path / "run/state.json").read_text())
    assert state["edit_ops"] == ["append"]
