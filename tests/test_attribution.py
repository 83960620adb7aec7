"""Edit attribution: which accepted edit of the best skill fixed and broke which items."""

from __future__ import annotations

import asyncio
import json

from scripted import GOOD_RULE, Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.attribution import Change, attribute, lineage, without_change
from skilltrain.models.fake import FakeModel
from skilltrain.report import write_report

BASE = "---\nname: t\n---\n# Task\nDo the task.\n"
RULE_A = "Rule A: check the units."
RULE_B = "Rule B: show the sum."
RULE_B2 = "Rule B: show the sum and the carry."
RULE_C = "Rule C: be verbose."
VAL = ["v1", "v2", "v3", "v4"]
TEST = ["t1", "t2", "t3"]


def solved(text: str, item: str) -> bool:
    """A: fixes v1, v2, t1. B (either wording): fixes v3, t2. C: breaks v4, t3, which the base
    skill solves."""
    if item in ("v1", "v2", "t1"):
        return RULE_A in text
    if item in ("v3", "t2"):
        return "Rule B:" in text
    return "Do the task." in text and RULE_C not in text


class RuleEvaluator:
    """The evaluator's interface over `solved`, counting each (skill, item) once like the cache."""

    def __init__(self, failing: set[str] = frozenset()):
        self.seen: set[tuple[str, str]] = set()
        self.new_rollouts = 0
        self.failing = failing  # items whose rollouts fail on infrastructure

    async def __call__(self, skill, task_ids, sample=0):
        for t in task_ids:
            if (skill.hash, t) not in self.seen:
                self.seen.add((skill.hash, t))
                self.new_rollouts += 1
        return {t: None if t in self.failing else float(solved(skill.text, t))
                for t in task_ids}


def append(skill: Skill, text: str) -> Skill:
    return Skill(skill.text + "\n" + text + "\n")


def chain():
    v0 = Skill(BASE)
    v1 = append(v0, RULE_A)
    v2 = append(v1, RULE_B)
    v3 = append(v2, RULE_C)
    v4 = Skill(v3.text.replace(RULE_B, RULE_B2))  # a later edit rewrites B's wording
    skills = [v0, v1, v2, v3, v4]
    return skills, [Change(n, skills[n - 1], skills[n], f"e01-s{n:03d}") for n in range(1, 5)]


def test_leave_one_out_finds_the_items_each_edit_fixed_and_broke():
    skills, changes = chain()
    best = skills[4]
    ev = RuleEvaluator()
    asyncio.run(ev(best, VAL + TEST))  # as the end-of-run scores leave it in the cache
    before = ev.new_rollouts
    out = asyncio.run(attribute(ev, changes, best, {"val": VAL, "test": TEST}))
    by = {e["version"]: e for e in out["entries"]}
    assert by[1]["mode"] == "leave_one_out"
    assert by[1]["val"]["fixed"] == ["v1", "v2"] and by[1]["val"]["broke"] == []
    assert by[1]["test"]["fixed"] == ["t1"]
    assert by[1]["val"]["delta"] == 0.5
    # B's first wording is no longer in the best skill: its own step, v2 against v1
    assert by[2]["mode"] == "version"
    assert by[2]["val"]["fixed"] == ["v3"] and by[2]["test"]["fixed"] == ["t2"]
    assert by[3]["mode"] == "leave_one_out"
    assert by[3]["val"]["broke"] == ["v4"] and by[3]["val"]["fixed"] == []
    assert by[3]["test"]["broke"] == ["t3"] and by[3]["val"]["delta"] == -0.25
    assert by[4]["mode"] == "leave_one_out"  # the rewording changed no outcome
    assert by[4]["val"]["fixed"] == by[4]["val"]["broke"] == [] and by[4]["val"]["delta"] == 0
    # new evaluations: one skill per leave-one-out (3), two per version entry, all items
    scored = {e["without"] for e in out["entries"]} | {e["with"] for e in out["entries"]}
    assert out["new_evaluations"] == ev.new_rollouts - before == \
        (len(scored) - 1) * (len(VAL) + len(TEST))


def test_cached_outcomes_cost_nothing_and_failures_are_excluded_not_broken():
    skills, changes = chain()
    ev = RuleEvaluator(failing={"v2"})
    for s in skills:
        asyncio.run(ev(s, VAL + TEST))
    out = asyncio.run(attribute(ev, changes[:1], skills[1], {"val": VAL}))
    entry = out["entries"][0]
    assert out["new_evaluations"] == 0  # v1 without A is v0, already scored
    assert entry["without"] == skills[0].hash
    assert entry["val"]["excluded"] == 1 and entry["val"]["n"] == 3
    assert entry["val"]["fixed"] == ["v1"] and "v2" not in entry["val"]["broke"]


def test_the_budget_ends_attribution_with_what_it_has():
    from skilltrain.models.meter import BudgetExceeded

    skills, changes = chain()
    checks = []

    def check():
        checks.append(1)
        if len(checks) > 2:
            raise BudgetExceeded("call limit reached (9 >= 9)")

    out = asyncio.run(attribute(RuleEvaluator(), changes, skills[4], {"val": VAL}, check=check))
    assert [e["version"] for e in out["entries"]] == [1, 2]
    assert out["stopped"] == "call limit reached (9 >= 9)"


def test_a_deleted_line_is_put_back_between_its_neighbours():
    parent = Skill("# T\nKeep this.\nOld rule.\nLast line.\n")
    child = Skill("# T\nKeep this.\nLast line.\n")
    best = append(child, RULE_A)
    undone = without_change(best, parent, child)
    assert undone is not None
    assert undone.text == "# T\nKeep this.\nOld rule.\nLast line.\n\n" + RULE_A + "\n"
    # an added text that appears twice cannot be taken out cleanly
    twice = append(append(Skill("# T\n"), RULE_A), RULE_A)
    assert without_change(twice, Skill("# T\n"), append(Skill("# T\n"), RULE_A)) is None


def test_lineage_follows_parents_and_skips_the_pruned_version():
    versions = [{"number": 0}, {"number": 1}, {"number": 2}, {"number": 3},
                {"number": 4, "pruned": True, "parent": 2}]
    assert lineage(versions, 4) == [(1, 0), (2, 1)]
    assert lineage(versions, 3) == [(1, 0), (2, 1), (3, 2)]
    assert lineage(versions, 0) == []


PAPER = {"proposals": 0, "screen": False, "demonstrations": False, "answer_form": False,
         "analyse_successes": True}
START = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"


def train(tmp_path, **train):
    script = Script(analyst_plan=["harmful", "good"])
    model = FakeModel(script.respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2,
                        "lr_min": 1, **PAPER, **train}}
    trainer = Trainer(config, target=model, optimizer=model)
    trainer.fit(make_tasks(24), Skill(START))
    return trainer, script


def test_a_run_attributes_every_fixed_item_to_the_good_rule(tmp_path):
    trainer, _ = train(tmp_path)
    summary = json.loads((trainer.run_dir_ / "summary.json").read_text())
    att = summary["attribution"]
    assert GOOD_RULE in trainer.best_skill_.text and len(att["entries"]) == 1
    entry = att["entries"][0]
    tasks = {t["id"] for t in make_tasks(24)}
    state = json.loads((trainer.run_dir_ / "state.json").read_text())
    row = next(r for r in state["history"] if r.get("version") == 1)
    assert entry["version"] == 1 and entry["step"] == row["id"]
    assert entry["mode"] == "leave_one_out"
    # GOOD_RULE fixes every item the initial skill got wrong, which is every item
    assert len(entry["val"]["fixed"]) == summary["sizes"]["val"] and entry["val"]["broke"] == []
    assert len(entry["test"]["fixed"]) == summary["sizes"]["test"]
    assert set(entry["val"]["fixed"] + entry["test"]["fixed"]) <= tasks
    assert entry["val"]["delta"] == summary["delta"]["val"]
    # best without the rule is the initial skill: every outcome came from the cache
    assert entry["without"] == Skill(START).hash and att["new_evaluations"] == 0
    page = write_report(trainer.run_dir_).read_text()
    assert "Attribution" in page and entry["test"]["fixed"][0] in page


def test_no_attribution_costs_nothing(tmp_path):
    on, script_on = train(tmp_path / "on", prune=True)
    off, script_off = train(tmp_path / "off", prune=True, attribution=False)
    assert off.summary_["attribution"] is None
    assert on.summary_["attribution"]["new_evaluations"] > 0  # best is pruned: LOO is new
    extra = len(script_on.requests) - len(script_off.requests)
    assert extra == on.summary_["attribution"]["new_evaluations"]
