"""The environment harness with our counter game (tests/agents/counter_env.py) and the
in-process FakeModel; the HTTP path is tests/e2e/test_environment_train.py."""

from __future__ import annotations

import asyncio

import pytest
from scripted import GOOD_RULE

from skilltrain.config import ConfigError, TrainConfig
from skilltrain.data import Task
from skilltrain.harness import make_harness
from skilltrain.harness.environment import EnvironmentHarness, parse_action
from skilltrain.models.base import ModelError
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.fake import FakeModel, system_prompt
from skilltrain.models.meter import Meter
from skilltrain.run_setup import build_harness
from skilltrain.scoring import make_scorer
from skilltrain.skill import Skill

GAME = "agents.counter_env:CounterGame"
TASK = Task(id="reach-3", input="Play the counter game.", answer="3")


def play(harness: EnvironmentHarness, respond, skill: Skill = Skill(GOOD_RULE)):
    model = FakeModel(respond)
    client = RoleClient(model, "target", Meter(), settings=CallSettings(retries=0))
    rollout = asyncio.run(harness.run(skill, TASK, client))
    return rollout, model


def inc_if_told(request):
    return "ACTION: inc" if GOOD_RULE in system_prompt(request) else "ACTION: dec"


@pytest.mark.parametrize("spec", [GAME, "agents.counter_env:AsyncCounterGame"])
def test_episode_reaches_the_goal_and_scores_by_reward(spec):
    rollout, model = play(make_harness("environment", environment={"env": spec}), inc_if_told)
    assert rollout.error is None and rollout.answer == "inc"
    actions = [e["action"] for e in rollout.trajectory if e["role"] == "assistant"]
    rewards = [e["reward"] for e in rollout.trajectory if e["role"] == "environment"
               and e.get("event") != "reset"]
    assert rollout.trajectory[1]["event"] == "reset" and "Bring it to 3" in \
        rollout.trajectory[1]["content"]
    assert actions == ["inc"] * 3 and rewards == [0.0, 0.0, 1.0]
    assert len(model.requests) == 3 and rollout.usage.calls == 3
    # the skill is in the system prompt, the first observation in the first user message
    first = model.requests[0]["messages"]
    assert GOOD_RULE in first[0]["content"] and "Bring it to 3" in first[1]["content"]
    # each later request carries the previous observation
    assert "The counter is at 2." in model.requests[2]["messages"][-1]["content"]
    score = make_scorer("reward").score(TASK, rollout)
    assert (score.hard, score.soft) == (1.0, 1.0)


def test_step_limit_ends_the_episode_unscored_as_success():
    harness = make_harness("environment", environment={"env": GAME, "max_steps": 4})
    rollout, model = play(harness, inc_if_told, Skill("no rule here"))
    assert len(model.requests) == 4
    assert rollout.trajectory[-2] == {"role": "harness", "event": "step_limit", "steps": 4}
    score = make_scorer("reward").score(TASK, rollout)
    assert score.hard == 0.0 and "not done after 4 steps" in score.feedback


def test_action_without_the_tag_is_the_last_line_and_recorded_so():
    assert parse_action("thinking\nACTION: inc\nmore\nACTION: dec") == ("dec", "tag")
    assert parse_action("I will go up.\ninc") == ("inc", "last_line")
    assert parse_action("  ") == ("", "none")
    rollout, _ = play(make_harness("environment", environment=GAME),
                      lambda r: "Going up.\ninc")
    assert {e["action_from"] for e in rollout.trajectory if e["role"] == "assistant"} == {
        "last_line"}


@pytest.mark.parametrize("spec, message", [
    ("agents.counter_env:BrokenGame", "simulator crashed"),
    ("agents.counter_env:BadRewardGame", "reward 'lots'"),
])
def test_a_failing_environment_is_an_infrastructure_failure(spec, message):
    rollout, _ = play(make_harness("environment", environment=spec), inc_if_told)
    assert rollout.error_kind == "environment" and message in rollout.error
    assert rollout.score is None and rollout.answer == ""


def test_a_model_error_ends_the_rollout_with_its_kind():
    rollout, _ = play(make_harness("environment", environment=GAME),
                      lambda r: ModelError("server_error", "server down"))
    assert rollout.error_kind == "server_error" and rollout.answer == ""


@pytest.mark.parametrize("spec, wording", [
    ("no_colon", "expected 'module:Class'"),
    ("no_such_module_xyz:Game", "cannot import module 'no_such_module_xyz'"),
    ("agents.counter_env:Missing", "has no class 'Missing'"),
    ("agents.counter_env:asyncio", "has no class 'asyncio'"),
    ("scripted:Script", "has no reset or step method"),
])
def test_bad_environment_spec_is_one_line_config_error(spec, wording):
    cfg = TrainConfig.model_validate({"harness": "environment", "environment": {"env": spec}})
    with pytest.raises(ConfigError) as info:
        build_harness(cfg)
    assert wording in str(info.value) and "\n" not in str(info.value)


def test_environment_harness_without_env_is_a_config_error():
    cfg = TrainConfig.model_validate({"harness": "environment"})
    with pytest.raises(ConfigError, match="environment.env: not set"):
        build_harness(cfg)
