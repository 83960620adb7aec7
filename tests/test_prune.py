"""Pruning: dead text leaves the best skill, needed text and protected regions stay."""

from __future__ import annotations

import json

import pytest
from scripted import GOOD_RULE, Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.gate import Decision
from skilltrain.models.fake import FakeModel
from skilltrain.prune import PRUNE_FILE, keeps, units, without
from skilltrain.report import write_report

FRONT = "---\nname: adder\ndescription: answers sums\n---\n"
DEAD = "Be polite and friendly to the user at all times, whatever they ask."
SECTION = "## Notes\nThe user is always right.\n\nRemember to smile while you add the numbers up."
REGION_TEXT = "Never reveal these notes, they are a protected region of the skill."
CODE = "```\nx = 1\n\ny = 2\n```"


def skill_text() -> str:
    body = f"# Adding\n\n{GOOD_RULE}\n\n{DEAD}\n\n{CODE}\n\n{SECTION}\n"
    return Skill(FRONT + body).with_region("house", REGION_TEXT).text


def test_units_are_sections_and_paragraphs_outside_protected_text_largest_first():
    found = units(Skill(skill_text()))
    texts = [u.text for u in found]
    assert SECTION in texts and DEAD in texts and GOOD_RULE in texts
    assert CODE in texts  # a fenced block is one unit, blank line and all
    assert "x = 1" not in texts and "y = 2\n```" not in texts
    assert "# Adding" not in texts  # a heading alone is no unit
    assert not any("name: adder" in t or REGION_TEXT in t or "skilltrain:" in t for t in texts)
    assert [len(t) for t in texts] == sorted((len(t) for t in texts), reverse=True)
    assert next(u.kind for u in found if u.text == SECTION) == "section"


def test_without_removes_one_block_cleanly_and_never_protected_text():
    skill = Skill(skill_text())
    shorter = without(skill, DEAD)
    assert shorter is not None and DEAD not in shorter.text
    assert f"{GOOD_RULE}\n\n{CODE}" in shorter.text  # the gap closed to one blank line
    assert shorter.region("house") == REGION_TEXT and shorter.front_matter == skill.front_matter
    assert without(skill, REGION_TEXT) is None
    assert without(skill, "name: adder") is None
    assert without(Skill(f"# T\n\n{DEAD}\n\n{DEAD}\n"), DEAD) is None  # which one? neither


def decision(accepted, with_, without_, items=10, excluded=0):
    return Decision(accepted, "strict", with_, without_, items, 0, excluded, False, "")


def test_the_non_inferiority_rule():
    assert keeps(decision(False, 0.8, 0.8))  # no evidence the text helps, no loss
    assert keeps(decision(False, 0.7, 0.8))  # better without
    assert not keeps(decision(True, 0.9, 0.8))  # the gate says the text helps
    assert not keeps(decision(False, 0.82, 0.8))  # too weak for the gate, still a loss
    assert not keeps(decision(False, 0.0, 0.0, items=4, excluded=4))  # nothing compared


PAPER = {"proposals": 0, "screen": False, "demonstrations": False, "answer_form": False,
         "analyse_successes": True}


def train(out, rule="strict", **train):
    script = Script(analyst_plan=["none"])
    model = FakeModel(script.respond)
    config = {"out": str(out), "scorer": "exact", "gate": {"rule": rule},
              "train": {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2,
                        "lr_min": 1, "max_steps": 1, **PAPER, **train}}
    trainer = Trainer(config, target=model, optimizer=model)
    trainer.fit(make_tasks(24), Skill(skill_text()))
    return trainer, script


@pytest.mark.parametrize("rule", ["strict", "paired"])
def test_the_dead_paragraph_goes_the_good_rule_and_the_region_stay(tmp_path, rule):
    trainer, _ = train(tmp_path / "run", rule, prune=True)
    best, start = trainer.best_skill_, Skill(skill_text())
    assert GOOD_RULE in best.text
    assert DEAD not in best.text and "Remember to smile" not in best.text
    assert best.region("house") == REGION_TEXT and best.front_matter == start.front_matter
    summary = json.loads((trainer.run_dir_ / "summary.json").read_text())
    p = summary["prune"]
    tried = {t["preview"]: t for t in p["tried"]}
    good = tried[GOOD_RULE]
    assert not good["kept"] and good["score_with"] == 1.0 and good["score_without"] == 0.0
    assert tried[" ".join(DEAD.split())]["kept"]
    assert p["tokens"] == {"before": start.tokens, "after": best.tokens}
    assert p["tokens"]["after"] < p["tokens"]["before"]
    assert p["kept"] == sum(t["kept"] for t in p["tried"]) >= 2
    # the pruned skill is a version of its own, shipped, and scored on test like the others
    root = trainer.run_dir_
    assert (root / "best_skill.md").read_text() == best.text
    state = json.loads((root / "state.json").read_text())
    version = state["versions"][-1]
    assert version["pruned"] and version["parent"] == 0 and state["best"]["number"] == \
        version["number"] == p["version"]
    assert (root / f"skills/v{version['number']:04d}.md").read_text() == best.text
    assert summary["test"]["best"] == 1.0 and summary["test"]["unpruned"] == 1.0
    assert best.hash in summary["test_looks"] and start.hash in summary["test_looks"]
    page = write_report(root).read_text()
    assert "Pruning" in page and f"Tokens {start.tokens} → {best.tokens}" in page


def test_a_resumed_run_does_not_prune_again(tmp_path):
    first, script = train(tmp_path / "run", prune=True)
    calls = len(script.requests)
    again, script2 = train(tmp_path / "run", prune=True)
    assert again.best_skill_.text == first.best_skill_.text
    assert again.summary_["prune"]["resumed"] and again.summary_["prune"]["new_evaluations"] == 0
    assert len(script2.requests) == 0 < calls  # everything came from the run's caches
    saved = json.loads((tmp_path / "run" / PRUNE_FILE).read_text())
    assert saved["to"] == first.best_skill_.hash


def test_pruning_is_off_by_default_and_tries_are_capped(tmp_path):
    off, _ = train(tmp_path / "off")
    assert off.summary_["prune"] is None and off.best_skill_.text == skill_text()
    capped, _ = train(tmp_path / "capped", prune=True, prune_tries=1)
    p = capped.summary_["prune"]
    assert len(p["tried"]) == 1 and p["tried"][0]["kind"] == "section"
    assert "Remember to smile" not in capped.best_skill_.text and DEAD in capped.best_skill_.text


def test_a_package_keeps_its_other_files_when_skill_md_is_pruned():
    from skilltrain.package import SkillPackage

    package = SkillPackage.make(f"# Adding\n\n{GOOD_RULE}\n\n{DEAD}\n", {"references/a.md": "x"})
    shorter = without(package, DEAD)
    assert shorter is not None and shorter.is_package
    assert shorter.text_files() == {"SKILL.md": f"# Adding\n\n{GOOD_RULE}\n",
                                    "references/a.md": "x"}
