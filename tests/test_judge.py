"""The judge scorer (judge.py) with the in-process FakeModel: criteria arithmetic, rubric
sources, failures as infrastructure, the rubric kept out of optimizer prompts, the judge role's
config, redaction and usage line."""

from __future__ import annotations

import asyncio
import json

import pytest
from scripted import BARE_CRITERION, JUDGE_FEEDBACK, POLITE_CRITERION, Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.config import ModelConfig, dump_config, parse_config, use_key_env
from skilltrain.data import Task
from skilltrain.evaluation import Evaluator
from skilltrain.judge import Judge, build_scorer, judge_section, parse_rubric
from skilltrain.models.base import ModelError
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.fake import FakeModel, last_user, schema_name
from skilltrain.models.meter import Meter
from skilltrain.records import Rollout
from skilltrain.redaction import REDACTED, missing_secrets, secret_values
from skilltrain.scoring import ScorerError, make_scorer

TASK = Task(id="t1", input="What is 2 plus 5?", answer="7")
RUBRIC = ["states the sum", "shows no working", "ends with a period"]


def judge_with(reply, meter: Meter | None = None, **options) -> tuple[Judge, FakeModel]:
    model = FakeModel(lambda request: reply(request) if callable(reply) else reply)
    client = RoleClient(model, "judge", meter or Meter(), settings=CallSettings(retries=0))
    return Judge(rubric=options.pop("rubric", RUBRIC), **options).with_client(client), model


def verdicts(*met: bool, reasons: tuple[str, ...] = (), feedback: str = "") -> str:
    rows = [{"met": m, "reason": reasons[i] if i < len(reasons) else "ok"}
            for i, m in enumerate(met)]
    return json.dumps({"criteria": rows, "feedback": feedback})


def score(judge: Judge, answer: str, task: Task = TASK):
    return asyncio.run(judge.score(task, Rollout(task_id=task.id, skill_hash="h", answer=answer)))


def test_hard_is_all_met_soft_is_the_fraction_and_feedback_hides_criteria():
    reply = verdicts(True, False, True, reasons=("", "it fails 'Shows no working'", ""),
                     feedback="Drop the working.")
    judge, model = judge_with(reply)
    got = score(judge, "2 + 5 = 7.")
    assert (got.hard, got.soft) == (0.0, pytest.approx(2 / 3, abs=1e-4))
    assert got.feedback.startswith("Drop the working.")
    assert "criterion 2 not met" in got.feedback
    assert "shows no working" not in got.feedback.lower()  # quoted back, cut out
    assert "[criterion 2]" in got.feedback
    prompt = last_user(model.requests[0])
    assert all(f"{i}. {c}" in prompt for i, c in enumerate(RUBRIC, start=1))
    assert schema_name(model.requests[0]) == "JudgeReply"
    full = score(judge_with(verdicts(True, True, True))[0], "7")
    assert (full.hard, full.soft) == (1.0, 1.0)


def test_a_visible_rubric_names_the_unmet_criterion():
    judge, _ = judge_with(verdicts(True, True, False, reasons=("", "", "no period")),
                          rubric_visible=True)
    assert "criterion 3 (ends with a period) not met: no period" in score(judge, "7").feedback


def test_a_task_rubric_overrides_the_config_rubric():
    judge, model = judge_with(verdicts(False))
    task = Task(id="t2", input="Say hi", meta={"rubric": "- greets the user\n"})
    got = score(judge, "hello", task)
    assert got.soft == 0.0
    prompt = last_user(model.requests[0])
    assert "1. greets the user" in prompt and "states the sum" not in prompt


def test_rubric_forms_and_bad_rubrics():
    assert parse_rubric("- a\n2. b\n\n* c", "r") == ("a", "b", "c")
    assert parse_rubric(["x", " y "], "r") == ("x", "y")
    with pytest.raises(ScorerError, match="r: the rubric is empty"):
        parse_rubric("  \n", "r")
    with pytest.raises(ScorerError, match="expected a list of criteria"):
        parse_rubric({"a": 1}, "r")
    with pytest.raises(ScorerError, match="task 'n' has no rubric"):
        Judge().check_tasks([Task(id="n", input="q")])
    with pytest.raises(ScorerError, match="calibration item 1"):
        Judge(rubric="x", calibration=[{"answer": "7", "hard": 2}])


def test_scorer_forms_and_the_judge_model_section():
    assert build_scorer("judge:openai:gpt-x").model == "openai:gpt-x"
    judge = build_scorer({"name": "judge", "rubric": "be brief", "rubric_visible": True})
    assert judge.rubric == ("be brief",) and judge.rubric_visible
    assert type(build_scorer({"name": "numeric", "tolerance": 0.5})).__name__ == "Numeric"
    with pytest.raises(ScorerError, match="unknown option"):
        build_scorer({"name": "judge", "rubrik": "x"})
    with pytest.raises(ScorerError, match="scores inside `skilltrain train`"):
        make_scorer("judge:openai:x")
    optimizer = ModelConfig(model="openai:opt", api_key_env="OPT_KEY")
    assert judge_section(None, optimizer, Judge()) is optimizer
    named = judge_section(None, optimizer, Judge(model="openai:small"))
    assert (named.model, named.api_key_env) == ("openai:small", "OPT_KEY")
    own = ModelConfig(model="openai:j")
    assert judge_section(own, optimizer, Judge()).model == "openai:j"


def test_the_judge_section_defaults_and_its_key_is_redacted(monkeypatch):
    cfg = parse_config({"judge": {"model": "openai:j", "api_key": "sk-judge-secret-123456"}})
    assert cfg.judge.max_tokens == 1024 and parse_config({}).judge is None
    saved = dump_config(cfg)
    assert "sk-judge-secret-123456" not in saved and REDACTED in saved
    assert "sk-judge-secret-123456" in secret_values(cfg, {})
    back = parse_config({"judge": {"model": "openai:j", "api_key": REDACTED}})
    assert missing_secrets(back) == ["judge.api_key"]
    assert use_key_env(back, "judge", "J_KEY").judge.api_key_env == "J_KEY"
    assert missing_secrets(parse_config({})) == []  # an unset judge needs nothing
    with pytest.raises(ValueError, match="optimizer's section"):
        use_key_env(parse_config({}), "judge", "J_KEY")


def test_a_failed_or_incomplete_judge_reply_is_an_infrastructure_failure():
    meter = Meter()
    short, _ = judge_with(verdicts(True, True), meter)  # two verdicts for three criteria
    with pytest.raises(ModelError, match="graded 2 criteria of 3") as info:
        score(short, "7")
    assert info.value.kind == "invalid_output" and meter.failures["invalid_output"] == 1

    class Harness:
        name = "fixed"

        async def run(self, skill, task, client, sample=0):
            return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample, answer="7")

    down, _ = judge_with(ModelError("timeout", "judge timed out"), meter)
    evaluator = Evaluator(Harness(), RoleClient(FakeModel(lambda r: "7"), "target", meter), down,
                          _Memory(), [TASK])
    result = asyncio.run(evaluator.rollouts(Skill("s"), [TASK]))
    assert result[0].score is None and result[0].error.startswith("scorer: judge timed out")
    assert evaluator.infra_failures == 1 and meter.failures["timeout"] == 1


class _Memory:
    def __init__(self):
        self.rows = {}

    def get(self, skill_hash, task_id, sample):
        return self.rows.get((skill_hash, task_id, sample))

    def put(self, rollout):
        self.rows[(rollout.skill_hash, rollout.task_id, rollout.sample)] = rollout


def test_calibration_counts_agreement_with_the_labels():
    script = Script()
    judge, _ = judge_with(lambda r: script.respond(r), rubric=[BARE_CRITERION], calibration=[
        {"input": "What is 2 plus 5?", "answer": "7", "hard": 1},
        {"input": "What is 2 plus 5?", "answer": "The answer is 7.", "hard": 0},
        {"input": "What is 2 plus 5?", "answer": "7", "hard": 0}])  # a label the judge rejects
    cal = asyncio.run(judge.calibrate())
    assert (cal.items, cal.agreed, cal.failed, cal.disagreements) == (3, 2, 0, ["item 3"])
    assert cal.line() == "judge calibration: agreed with 2/3 labels (67%); disagreed on item 3"


def test_training_with_a_judge_never_shows_the_rubric_to_the_optimizer(tmp_path):
    script = Script(analyst_plan=["harmful", "good"])
    model = FakeModel(script.respond)
    events: list[dict] = []
    config = {"out": str(tmp_path / "run"), "gate": {"rule": "strict"},
              "scorer": {"name": "judge", "rubric": [BARE_CRITERION, POLITE_CRITERION],
                         "calibration": [{"input": "What is 1 plus 4?", "answer": "5",
                                          "hard": 1}]},
              "train": {"epochs": 1, "batch_size": 6, "lr": 2, "lr_min": 1, "proposals": 0,
                        "screen": False, "demonstrations": False, "answer_form": False}}
    trainer = Trainer(config, target=model, optimizer=model, callbacks=[events.append])
    trainer.fit(make_tasks(24), Skill("# Adding\nAdd the two numbers.\n"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"]["accepted"] >= 1 and summary["val"]["best"] > summary["val"]["initial"]
    assert summary["usage"]["judge"]["calls"] > 0
    assert any(k.startswith("judge/") for k in summary["usage_by_stage"])
    assert [e["agreed"] for e in events if e["event"] == "calibration"] == [1]
    judged = [r for r in script.requests if schema_name(r) == "JudgeReply"]
    optimizer = [r for r in script.requests if schema_name(r) not in (None, "JudgeReply")]
    assert judged and optimizer
    assert any(JUDGE_FEEDBACK in json.dumps(r) for r in optimizer)  # the judge's words arrive
    for request in optimizer:
        text = json.dumps(request)
        assert "rubric-secret" not in text and "^[0-9]+$" not in text
