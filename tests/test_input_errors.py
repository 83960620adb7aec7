"""A task whose image file is missing is an infrastructure failure of kind "input": the chat
harness returns a rollout naming the file instead of raising, the model is never called, the
item is left out of the mean (not scored wrong), and the run's summary counts it by kind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from scripted import GOOD_RULE, Script, make_tasks

from skilltrain.api import evaluate
from skilltrain.data import Task
from skilltrain.evaluation import NothingScored
from skilltrain.harness.chat import INPUT_ERROR, ChatHarness
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.fake import FakeModel
from skilltrain.models.meter import Meter
from skilltrain.skill import Skill

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def never(request: dict) -> str:
    raise AssertionError("the model must not be called for a task it cannot be shown")


def test_a_missing_image_is_an_input_error_naming_the_file(tmp_path):
    missing = tmp_path / "pages" / "p1.png"
    task = Task(id="d1", input="What is the total?", answer="7",
                meta={"images": [str(missing)]})
    model = FakeModel(never)
    client = RoleClient(model, "target", Meter(), settings=CallSettings(retries=0))
    rollout = asyncio.run(ChatHarness().run(Skill("Answer."), task, client))
    assert rollout.error_kind == INPUT_ERROR == "input"
    assert str(missing) in rollout.error and "task d1" in rollout.error
    assert rollout.answer == "" and rollout.score is None and model.requests == []


def test_input_errors_are_left_out_of_the_mean_not_scored_wrong(tmp_path):
    image = tmp_path / "ok.png"
    image.write_bytes(PNG)
    tasks = [{"id": "a", "input": "What is 1 plus 2?", "answer": "3", "images": [str(image)]},
             {"id": "b", "input": "What is 2 plus 2?", "answer": "4"},
             {"id": "c", "input": "What is 3 plus 2?", "answer": "5",
              "images": [str(tmp_path / "gone.png")]}]
    model = FakeModel(lambda request: Script().respond(request))
    result = evaluate(Skill(GOOD_RULE), tasks, target=model, scorer="exact")
    assert (result["score"], result["n"], result["infra_failures"]) == (1.0, 2, 1)
    assert len(model.requests) == 2
    with pytest.raises(NothingScored, match=r"all 1 items failed \(input 1\).*gone\.png"):
        evaluate(Skill(GOOD_RULE), tasks[2:], target=model, scorer="exact")


def test_the_run_summary_counts_input_failures_by_kind(tmp_path: Path):
    from skilltrain import Trainer

    tasks = make_tasks(12)
    for task in tasks[:4]:  # every split gets some: all tasks are run at least once
        task["images"] = [str(tmp_path / f"missing-{task['id']}.png")]
    script = Script(analyst_plan=["good"])
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "data": {"split": [0.34, 0.33, 0.33]},
              "train": {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2,
                        "lr_min": 1, "max_steps": 1}}
    trainer = Trainer(config, target=FakeModel(script.respond),
                      optimizer=FakeModel(script.respond))
    trainer.fit(tasks, "---\nname: adder\ndescription: sums\n---\nAdd the numbers.\n")
    failures = trainer.summary_["infra_failures"]
    assert set(failures["by_kind"]) == {"input"} and failures["by_kind"]["input"] >= 4
    assert failures["total"] == failures["by_kind"]["input"]
    assert trainer.summary_["val"]["best"] == 1.0  # the good rule, scored on the other items


def test_harness_failures_without_a_model_error_are_counted_by_kind(tmp_path: Path):
    """A raising environment fails its rollouts with kind "environment" and no failed model
    call: the run's summary still counts them by kind."""
    from skilltrain import Trainer
    from skilltrain.harness import make_harness

    tasks = [{"id": f"g{i}", "input": "Reach the goal.", "answer": "99" if i % 3 == 0 else
              str(1 + i % 3)} for i in range(12)]
    script = Script(analyst_plan=["good"])
    config = {"out": str(tmp_path / "run"), "scorer": "reward", "gate": {"rule": "strict"},
              "data": {"split": [0.34, 0.33, 0.33]},
              "train": {"epochs": 1, "batch_size": 4, "lr": 1, "lr_min": 1, "max_steps": 1}}
    trainer = Trainer(config, target=FakeModel(lambda request: "inc"),
                      optimizer=FakeModel(script.respond),
                      harness=make_harness("environment",
                                           environment="agents.counter_env:FailsOnGoal99"))
    trainer.fit(tasks, "---\nname: counter\ndescription: counts\n---\nSay inc.\n")
    failures = trainer.summary_["infra_failures"]
    assert set(failures["by_kind"]) == {"environment"} and failures["by_kind"]["environment"] >= 4
