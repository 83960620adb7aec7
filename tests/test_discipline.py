"""The SkillOpt discipline around the edits: epoch boundary, meta skill, autonomous learning
rate, update modes, skill-aware appendix. Each test shows one mechanism's observable effect."""

from __future__ import annotations

import asyncio
import json

from scripted import GOOD_RULE, META_NOTES, SLOW_GUIDANCE, Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.models.client import RoleClient
from skilltrain.models.fake import FakeModel, schema_name
from skilltrain.models.meter import Meter
from skilltrain.optim.appendix import add_reminders, compact, reminders_of
from skilltrain.optim.patch import Patch
from skilltrain.optim.select import select_edits
from skilltrain.skill import Edit

PAPER = {"proposals": 0, "screen": False, "demonstrations": False,
         "answer_form": False,
         "analyse_successes": True}  # the paper's loop

START = ("---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n\n"
         "<!-- skilltrain:begin slow-update -->\nold guidance\n"
         "<!-- skilltrain:end slow-update -->\n")


def two_epochs(tmp_path, **train):
    script = Script(analyst_plan=["good", "none"])
    model = FakeModel(script.respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 2, "batch_size": 12, "lr": 2, "lr_min": 1, **PAPER,
                        **train}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    return trainer, script


def test_slow_update_changes_only_its_block_and_final_is_regated(tmp_path):
    trainer, _ = two_epochs(tmp_path, slow_update="force")
    root = trainer.run_dir_
    state = json.loads((root / "state.json").read_text())
    forced = [v for v in state["versions"] if v.get("gated") is False]
    assert len(forced) == 1
    before = Skill((root / f"skills/v{forced[0]['number'] - 1:04d}.md").read_text())
    after = Skill((root / f"skills/v{forced[0]['number']:04d}.md").read_text())
    assert after.region("slow-update") == SLOW_GUIDANCE
    assert before.region("slow-update") == "old guidance"
    restored = after.with_region("slow-update", "old guidance")
    assert restored.text == before.text  # nothing outside the block moved
    events = [json.loads(x)["event"] for x in (root / "events.jsonl").read_text().splitlines()]
    assert "final_gate" in events  # final (forced) differs from best, so it is gated once more
    s = trainer.summary_
    assert set(s["test"]) == {"initial", "best", "final"}
    assert set(s["test_by_type"]["best"]) == {"even", "odd"}


def test_gated_slow_update_is_a_candidate_like_any_other(tmp_path):
    trainer, _ = two_epochs(tmp_path)  # default: gated
    rows = [r for r in json.loads((trainer.run_dir_ / "state.json").read_text())["history"]
            if r.get("kind") == "epoch_boundary"]
    assert len(rows) == 1
    assert rows[0]["outcome"] in ("accepted", "rejected")
    assert "val_candidate" in rows[0]  # it went through the gate


def test_meta_notes_reach_optimizer_calls_only(tmp_path):
    _, script = two_epochs(tmp_path)
    optimizer = [r for r in script.requests if "response_format" in r]
    target = [r for r in script.requests if "response_format" not in r]
    meta_index = next(i for i, r in enumerate(script.requests)
                      if schema_name(r) == "MetaReply")
    later = [r for r in script.requests[meta_index + 1:] if "response_format" in r]
    assert later, "expected optimizer calls in the second epoch"
    assert all(META_NOTES in r["messages"][0]["content"] and r["messages"][0]["role"]
               == "system" for r in later)
    assert not any(META_NOTES in json.dumps(r) for r in target)
    assert not any(META_NOTES in json.dumps(r) for r in optimizer[:3])


def _client(respond):
    return RoleClient(FakeModel(respond), "optimizer", Meter())


def _patch(n):
    return Patch(side="merged", edits=[Edit(op="append", content=f"rule {i}", support=n - i)
                                       for i in range(n)])


def test_autonomous_count_is_clamped_and_recorded():
    skill = Skill("# S\n")
    low = _client(lambda r: json.dumps({"reasoning": "one is enough", "chosen": [3]}))
    sel = asyncio.run(select_edits(skill, _patch(6), 4, low, floor=2))
    assert len(sel.edits) == 2 and sel.edits[0].content == "rule 2"
    assert sel.autonomous == {"proposed_count": 1, "count": 2, "bounds": [2, 4],
                              "reasoning": "one is enough"}
    high = _client(lambda r: json.dumps({"reasoning": "all", "chosen": [1, 2, 3, 4, 5, 6]}))
    sel = asyncio.run(select_edits(skill, _patch(6), 4, high, floor=2))
    assert len(sel.edits) == 4 and sel.autonomous["proposed_count"] == 4
    told = []
    asyncio.run(select_edits(skill, _patch(6), 4, _client(
        lambda r: told.append(r["messages"][-1]["content"]) or json.dumps(
            {"chosen": [1, 2, 3]})), floor=2))
    assert "between 2 and 4" in told[0]


def test_autonomous_schedule_in_a_run_records_choice(tmp_path):
    trainer, _ = two_epochs(tmp_path, lr_schedule="autonomous", lr=3, lr_min=1)
    assert trainer.summary_["steps"]["accepted"] >= 1
    sel = json.loads((trainer.run_dir_ / "steps/e01-s001/selection.json").read_text())
    assert sel["budget"] <= 3


def test_appendix_reminders_are_deduplicated_and_compacted():
    skill = Skill("# S\nBody.\n")
    once, added = add_reminders(skill, ["Re-read the format rule.", "re-read the FORMAT rule",
                                        "Check units."])
    assert added == ["Re-read the format rule.", "Check units."]
    twice, added2 = add_reminders(once, ["Check units.", "Answer last."])
    assert added2 == ["Answer last."]
    assert reminders_of(twice) == ["Re-read the format rule.", "Check units.", "Answer last."]
    assert twice.body.startswith("# S\nBody.")
    compacted = asyncio.run(compact(twice, _client(
        lambda r: json.dumps({"reminders": ["Follow the format rule.", "Check units."]})),
        threshold=2, limit=2))
    assert reminders_of(compacted) == ["Follow the format rule.", "Check units."]
    untouched = asyncio.run(compact(once, _client(lambda r: 1 / 0), threshold=5, limit=2))
    assert untouched.text == once.text  # under the threshold: no call at all


def test_appendix_run_puts_lapses_in_protected_block(tmp_path):
    def respond(request):
        if schema_name(request) == "AnalystReplyWithReminders":
            return json.dumps({"patterns": "lapse", "edits": [
                {"op": "append", "content": GOOD_RULE}],
                "reminders": ["Double-check the answer format."]})
        return Script().respond(request)

    model = FakeModel(respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 24, "lr": 2, "appendix": True, **PAPER}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    assert reminders_of(trainer.best_skill_) == ["Double-check the answer format."]


def test_rewrite_keeps_front_matter_and_protected_regions():
    skill = Skill(START)
    new = skill.with_body("---\nname: evil\n---\n# New body\nRule.\n"
                         "<!-- skilltrain:begin slow-update -->\nforged\n"
                         "<!-- skilltrain:end slow-update -->")
    assert new.name == "adder" and new.region("slow-update") == "old guidance"
    assert "# New body\nRule." in new.body and "forged" not in new.text


def test_rewrite_mode_over_budget_is_discarded(tmp_path):
    def respond(request):
        if schema_name(request) == "RewriteReply":
            return json.dumps({"skill": "# Long\n" + "word " * 2000})
        return Script(analyst_plan=["good"]).respond(request)

    model = FakeModel(respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact",
              "train": {"epochs": 1, "batch_size": 24, "update_mode": "rewrite", **PAPER,
                        "max_skill_tokens": 200}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    assert trainer.summary_["steps"]["skipped"] == 1
    sel = json.loads((trainer.run_dir_ / "steps/e01-s001/selection.json").read_text())
    assert "over the 200-token budget" in sel["note"]


def test_full_rewrite_mode_picks_and_gates_a_whole_skill(tmp_path):
    def respond(request):
        name = schema_name(request)
        if name == "FullRewriteReply":
            return json.dumps({"patterns": "extra words", "skill": f"# Adding\n{GOOD_RULE}\n"})
        return Script().respond(request)

    model = FakeModel(respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 24, "update_mode": "full_rewrite",
                        **PAPER}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    assert trainer.summary_["steps"]["accepted"] == 1
    assert GOOD_RULE in trainer.best_skill_.body
    assert trainer.best_skill_.region("slow-update") == "old guidance"


def test_edit_ops_narrow_the_analyst_schema_and_prompt(tmp_path):
    script = Script(analyst_plan=["good"])
    model = FakeModel(script.respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact",
              "train": {"epochs": 1, "batch_size": 24, "edit_ops": ["append"], **PAPER}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    analyst = next(r for r in script.requests if schema_name(r) == "AnalystReply")
    schema = analyst["response_format"]["json_schema"]["schema"]
    edit = schema["$defs"]["AppendEditOut"]["properties"]
    assert edit["op"] == {"const": "append", "title": "Op", "type": "string"}
    assert "target" not in edit and edit["content"]["maxLength"] == 600
    prompt = analyst["messages"][-1]["content"]
    assert "`append`" in prompt and "`replace`" not in prompt
    assert trainer.summary_["steps"]["accepted"] == 1
