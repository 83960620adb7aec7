"""The answer-form candidate: proposed only when failing answers hold the right answer in the
wrong form, shaped by references of other train items, screened and gated like any other."""

from __future__ import annotations

import json

from scripted import Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.data import Task
from skilltrain.models.fake import FakeModel
from skilltrain.optim.form import HEADING, answer_kind, form_edit, holds_reference
from skilltrain.records import Rollout, Score

START = "# Arithmetic\n\nAnswer the question.\n"


def pair(i: int, answer: str, given: str, kind: str = "sum") -> tuple[Task, Rollout]:
    task = Task(id=f"t{i}", input=f"What is item {i}?", answer=answer, type=kind)
    return task, Rollout(task_id=task.id, skill_hash="h", answer=given,
                         score=Score(hard=0.0, soft=0.0))


def test_holds_reference_needs_the_whole_answer_inside_more_text():
    assert holds_reference(*pair(0, "14", "The expression 4 + 5 + 5 is equal to 14."))
    assert holds_reference(*pair(1, "09.06.2001", "The date is 09.06.2001 in house format"))
    assert not holds_reference(*pair(2, "14", "The answer is 141."))  # a different number
    assert not holds_reference(*pair(3, "4", "The answer is 4.5"))  # part of a decimal
    assert not holds_reference(*pair(4, "14", "14"))  # nothing around it: not a form failure
    assert not holds_reference(*pair(5, "14", "fourteen"))
    assert not holds_reference(*pair(6, "", "anything at all"))


def test_form_edit_when_most_failures_are_wrapped_answers_and_it_shows_no_value():
    failures = [pair(i, str(i * 3), f"The result is {i * 3}.") for i in range(4)]
    failures.append(pair(9, "27", "twenty-seven"))
    train = [t for t, _ in failures] + [Task(id=f"o{i}", input=f"other {i}", answer=str(100 + i),
                                              type="sum") for i in range(5)]
    edit = form_edit(Skill(START), failures, train)
    assert edit is not None and edit.op == "append" and edit.content.startswith(HEADING)
    assert edit.support == 4 and "4 of 5" in edit.rationale
    assert "a whole number written in digits" in edit.content
    assert not any(ch.isdigit() for ch in edit.content)  # values invite copying


def test_answer_kind_reads_the_train_references():
    assert answer_kind(["14", "-3", "0"]).startswith("a whole number")
    assert answer_kind(["1.5", "3", "-0.25"]) == "a number written in digits"
    labels = ["Q-ACCESS", "Q-LEDGER", "Q-ACCESS", "Q-LEDGER", "Q-GENERAL", "Q-GENERAL"]
    assert answer_kind(labels) == "exactly one of: Q-ACCESS, Q-GENERAL, Q-LEDGER"
    assert answer_kind(["09.06.2001", "22.08.1993", "01.01.2000"]) == ""  # no plain kind
    assert answer_kind(["a", "b", "c", "d"]) == ""  # each seen once: not a label set
    assert answer_kind([]) == ""


def test_no_form_edit_when_form_is_not_what_fails_or_the_section_exists():
    train = [Task(id=f"o{i}", input=f"other {i}", answer=str(i), type="sum") for i in range(5)]
    wrong = [pair(i, str(i), f"The result is {i + 50}.") for i in range(6)]
    assert form_edit(Skill(START), wrong, train) is None  # wrong content, not wrong form
    few = [pair(i, str(i), f"The result is {i}.") for i in range(2)]
    assert form_edit(Skill(START), few, train) is None  # two rows are not a pattern
    mixed = [pair(i, str(i), f"The result is {i}.") for i in range(3)] + wrong
    assert form_edit(Skill(START), mixed, train) is None  # 3 of 9: not most failures
    wrapped = [pair(i, str(i), f"The result is {i}.") for i in range(5)]
    assert form_edit(Skill(START), wrapped, train) is not None
    already = Skill(START + f"\n{HEADING}\n\nReply with the number.\n")
    assert form_edit(already, wrapped, train) is None
    texts = [Task(id=f"l{i}", input="x", answer=f"word {i} " * 5, type="sum") for i in range(3)]
    edit = form_edit(Skill(START), wrapped, texts)  # no plain kind: the instruction alone
    assert edit is not None and "Reply with only the final answer, nothing else" in edit.content


def test_the_form_candidate_is_screened_gated_and_lands_when_the_target_follows_it(tmp_path):
    script = Script(analyst_plan=["none"], follows_form=True)
    model = FakeModel(script.respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 6, "lr": 2, "proposals": 0,
                        "demonstrations": False}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    assert HEADING in trainer.best_skill_.text
    summary = trainer.summary_
    assert summary["candidates"]["chosen"] == {"form": 1}
    assert summary["test"]["best"] > summary["test"]["initial"]
    screen = json.loads((tmp_path / "run/steps/e01-s001/screen.json").read_text())
    (form,) = [c for c in screen["candidates"] if c["name"] == "form"]
    assert form["chosen"] and form["screen"]["passed"] and form["screen"]["delta"] > 0
    later = sorted((tmp_path / "run/steps").glob("e01-s00[2-9]/screen.json"))
    for path in later:  # the section landed: it is not proposed again
        assert "form" not in {c["name"] for c in json.loads(path.read_text())["candidates"]}


def test_answer_form_off_proposes_no_form_candidate(tmp_path):
    script = Script(analyst_plan=["none"], follows_form=True)
    model = FakeModel(script.respond)
    config = {"out": str(tmp_path / "run"), "scorer": "exact",
              "train": {"epochs": 1, "batch_size": 6, "proposals": 0, "demonstrations": False,
                        "answer_form": False, "max_steps": 1}}
    trainer = Trainer(config, target=model, optimizer=model).fit(make_tasks(24), Skill(START))
    assert HEADING not in trainer.best_skill_.text
    assert "form" not in trainer.summary_["candidates"].get("chosen", {})
