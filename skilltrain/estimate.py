"""A before-the-run estimate of calls, tokens and dollars, so nobody is surprised by the bill.

It is an upper-bound sketch from the config and the data sizes (the gate may race and use fewer
validation items; caches make repeats free; screening counts every possible candidate), printed
before the first call is made. An agent
rollout is counted as `max_turns` target calls whose prompts grow with the conversation; a
command-harness rollout makes no call through skilltrain (the external agent bills its own), so
only the optimizer side is estimated there.
"""

from __future__ import annotations

import math

from skilltrain.config import TrainConfig
from skilltrain.data import Splits
from skilltrain.models.meter import Meter
from skilltrain.records import Usage
from skilltrain.skill import Skill


def estimate(cfg: TrainConfig, splits: Splits, skill: Skill, meter: Meter) -> dict:
    t = cfg.train
    n_train, n_val, n_test = len(splits.train), len(splits.val), len(splits.test)
    per_epoch = math.ceil(n_train / t.batch_size)
    steps = min(t.epochs * per_epoch, t.max_steps or t.epochs * per_epoch)
    batch = min(t.batch_size, n_train)
    boundaries = max(0, min(t.epochs - 1, steps // max(per_epoch, 1)))
    analysts = math.ceil(batch / t.minibatch_size) + (1 if t.analyse_successes else 0)
    merges = max(0, analysts - 1)
    # screening: the merged candidate, one per rule proposal, examples, and their combination,
    # each on at most 30 batch items (the answer-form candidate comes at most once a run)
    candidates = 1 + t.proposals + (2 if t.demonstrations else 0)
    screened = candidates * min(batch, 30) if t.screen else 0
    rollouts = (n_val + steps * (batch + screened + n_val) + 3 * n_test
                + boundaries * (2 * min(t.slow_update_samples, n_train) + n_val))
    turns = {"chat": 1, "agent": cfg.agent.max_turns, "command": 0,
             "environment": cfg.environment.max_steps}[cfg.harness]  # at most: done may end it
    target_calls = rollouts * turns
    reply_tokens = min(cfg.target.max_tokens, 100)
    # an agent's later turns re-send the earlier ones: on average half the history per call
    observation_chars = (cfg.environment if cfg.harness == "environment"
                         else cfg.agent).observation_chars
    history = (turns - 1) / 2 * (reply_tokens + observation_chars / 4) \
        if cfg.harness in ("agent", "environment") else 0
    optimizer_calls = steps * (analysts + merges + 1 + t.proposals) + boundaries * 2
    avg_input = sum(len(x.input) for x in splits.all()) / max(1, len(splits.all())) / 4
    skill_tokens = max(skill.tokens, 200)
    target = Usage(prompt_tokens=int(target_calls * (skill_tokens + avg_input + 10 + history)),
                   completion_tokens=int(target_calls * reply_tokens),
                   calls=target_calls)
    optimizer = Usage(
        prompt_tokens=int(optimizer_calls * (skill_tokens + t.minibatch_size * (avg_input + 120)
                                             + 600)),
        completion_tokens=int(optimizer_calls * min(cfg.optimizer.max_tokens, 500)),
        calls=optimizer_calls)
    probe = Meter(prices=meter.prices, models={"target": cfg.target.model,
                                                "optimizer": cfg.optimizer.model})
    cost = probe.cost_of("target", target) + probe.cost_of("optimizer", optimizer)
    return {"steps": steps, "target": target.model_dump(), "optimizer": optimizer.model_dump(),
            "tokens": target.total_tokens + optimizer.total_tokens, "cost_usd": round(cost, 4)}
