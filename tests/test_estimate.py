"""The before-the-run estimate: chat, agent and command harnesses, and epoch boundaries."""

from __future__ import annotations

from skilltrain.config import parse_config
from skilltrain.data import Splits, Task
from skilltrain.estimate import estimate
from skilltrain.models.meter import Meter
from skilltrain.skill import Skill

SKILL = Skill("---\nname: s\ndescription: d\n---\n# S\nDo it well.\n")


def splits(train: int = 40, val: int = 10, test: int = 6) -> Splits:
    def tasks(split: str, n: int) -> list[Task]:
        return [Task(id=f"{split}-{i}", input="What is 2 plus 3?", answer="5") for i in range(n)]
    return Splits(tasks("train", train), tasks("val", val), tasks("test", test))


def run(**settings) -> dict:
    cfg = parse_config({"train": {"epochs": 1, "batch_size": 20, "minibatch_size": 10,
                                  "analyse_successes": False}, **settings})
    return estimate(cfg, splits(), SKILL, Meter(prices={}))


def test_chat_counts_one_target_call_per_rollout() -> None:
    est = run()
    # baseline val + 2 steps x (batch + screening + val) + test on initial, best, final;
    # screening: merged + 3 rule proposals + examples + combined, each on the 20-item batch
    assert est["steps"] == 2
    assert est["target"]["calls"] == 10 + 2 * (20 + 6 * 20 + 10) + 3 * 6
    paper = run(train={"epochs": 1, "batch_size": 20, "minibatch_size": 10, "proposals": 0,
                       "analyse_successes": False, "screen": False, "demonstrations": False})
    assert paper["target"]["calls"] == 10 + 2 * (20 + 10) + 3 * 6
    # per step: 2 analysts + 1 merge + 1 ranking call, and 3 rule analysts unless turned off
    assert est["optimizer"]["calls"] == 2 * (2 + 1 + 1 + 3)
    assert paper["optimizer"]["calls"] == 2 * (2 + 1 + 1)


def test_agent_counts_every_turn_and_the_growing_history() -> None:
    chat, agent = run(), run(harness="agent", agent={"max_turns": 4})
    assert agent["target"]["calls"] == 4 * chat["target"]["calls"]
    per_call_chat = chat["target"]["prompt_tokens"] / chat["target"]["calls"]
    per_call_agent = agent["target"]["prompt_tokens"] / agent["target"]["calls"]
    assert per_call_agent > per_call_chat + 500  # earlier turns and observations are re-sent
    assert agent["optimizer"] == chat["optimizer"]


def test_command_harness_estimates_only_the_optimizer() -> None:
    chat, command = run(), run(harness="command", command={"cmd": "my-agent {task_file}"})
    assert command["target"]["calls"] == 0 and command["target"]["prompt_tokens"] == 0
    assert command["optimizer"] == chat["optimizer"]


def test_epoch_boundaries_add_slow_update_and_meta_calls() -> None:
    one = run()
    two = parse_config({"train": {"epochs": 2, "batch_size": 20, "minibatch_size": 10,
                                  "analyse_successes": False, "slow_update_samples": 5}})
    est = estimate(two, splits(), SKILL, Meter(prices={}))
    assert est["steps"] == 4
    # one boundary: both skills on the slow-update sample, and the gated result on val
    extra_target = 2 * (20 + 6 * 20 + 10) + (2 * 5 + 10)
    assert est["target"]["calls"] == one["target"]["calls"] + extra_target
    assert est["optimizer"]["calls"] > 2 * one["optimizer"]["calls"]
