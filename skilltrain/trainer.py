"""The training loop: for each epoch, for each batch, the six stages of SPEC.md.

`Trainer` follows the scikit-learn contract: the constructor stores settings, `fit()` does the
work and returns self, and what was learned ends in an underscore (`best_skill_`, `summary_`).
Everything else a run knows lives in `RunContext` (run.py), checkpointed after every step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from skilltrain.config import TrainConfig, merge_overrides, parse_config
from skilltrain.data import Task, epoch_batches
from skilltrain.models.base import ChatModel
from skilltrain.models.meter import BudgetExceeded
from skilltrain.optim.aggregate import Aggregator
from skilltrain.optim.memory import RejectedEntry
from skilltrain.optim.reflect import reflect
from skilltrain.optim.schedule import edit_budget
from skilltrain.optim.select import select_edits
from skilltrain.optim.update import apply_patch
from skilltrain.run import RunContext, StepRecord, open_run
from skilltrain.skill import Skill


class Trainer:
    def __init__(
        self,
        config: TrainConfig | dict[str, Any] | None = None,
        *,
        target: ChatModel | None = None,
        optimizer: ChatModel | None = None,
        scorer: Any = None,
        harness: Any = None,
        callbacks: Iterable[Callable[[dict], None]] = (),
        replay: bool = False,
        **overrides: Any,
    ):
        if isinstance(config, dict):
            config = parse_config(config)
        config = config or TrainConfig()
        if overrides:
            config = merge_overrides(config, overrides, "Trainer(...)")
        self.config = config
        self.target = target
        self.optimizer = optimizer
        self.scorer = scorer
        self.harness = harness
        self.callbacks = list(callbacks)
        self.replay = replay

    def fit(self, tasks: Iterable[Task | dict] | None = None, skill: Skill | str | None = None
            ) -> Trainer:
        return asyncio.run(self.afit(tasks, skill))

    async def afit(self, tasks: Iterable[Task | dict] | None = None,
                   skill: Skill | str | None = None) -> Trainer:
        async with open_run(self, tasks, skill) as run:
            try:
                await self._train(run)
            except BudgetExceeded as exc:
                run.stopped = str(exc)
                run.emit("budget_stop", reason=str(exc))
            await run.finish()
            self.best_skill_ = run.best.skill
            self.final_skill_ = run.incumbent.skill
            self.summary_ = run.summary
            self.run_dir_ = run.store.root
        return self

    async def _train(self, run: RunContext) -> None:
        cfg = self.config.train
        seed = self.config.seed
        batches_per_epoch = len(epoch_batches(run.splits.train, cfg.batch_size, 0, seed))
        total = cfg.epochs * batches_per_epoch
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        for epoch in range(run.epoch, cfg.epochs):
            batches = epoch_batches(run.splits.train, cfg.batch_size, epoch, seed)
            for index in range(run.batch_index, len(batches)):
                if run.global_step >= total:
                    return
                budget = edit_budget(cfg.lr_schedule, run.global_step, total, cfg.lr, cfg.lr_min)
                record = await self._step(run, epoch, index, batches[index], budget)
                run.commit_step(record, next_epoch=epoch, next_batch=index + 1)
            run.commit_epoch(epoch + 1)

    async def _step(self, run: RunContext, epoch: int, index: int, batch: list[Task],
                    budget: int) -> StepRecord:
        cfg = self.config.train
        skill = run.incumbent.skill
        step = run.begin_step(epoch, index, budget)

        rollouts = await run.evaluator.rollouts(skill, batch)                      # 1. rollout
        step.rollouts(batch, rollouts)
        run.meter.check()

        reflection = await reflect(                                                # 2. reflect
            skill, list(zip(batch, rollouts)), run.optimizer, minibatch_size=cfg.minibatch_size,
            budget=budget, rejected=run.rejected, meta=run.meta_notes,
            analyse_successes=cfg.analyse_successes)
        step.reflection(reflection)
        run.meter.check()

        aggregator = Aggregator(run.optimizer, group_size=cfg.merge_group,        # 3. aggregate
                                limit=max(8, 3 * budget), meta=run.meta_notes)
        patch = await aggregator.aggregate(skill, reflection.patches)
        step.patch(patch, aggregator)
        run.meter.check()

        selection = await select_edits(skill, patch, budget, run.optimizer)      # 4. select
        step.selection(selection)
        run.meter.check()

        update = apply_patch(skill, selection.edits)                              # 5. update
        step.update(update)
        if not update.changed:
            return step.skip("no edit applied" if selection.edits else "no edit proposed")

        decision = await run.gate.decide(update.candidate, skill, run.val_ids,   # 6. gate
                                         run.evaluator)
        step.decision(decision)
        if decision.accepted:
            run.accept(update.candidate, step)
        else:
            run.rejected.add(RejectedEntry(
                step=run.global_step + 1, edits=[r.edit for r in update.results
                                                 if r.status.value == "applied"],
                delta=round(decision.candidate_score - decision.incumbent_score, 4),
                patterns=patch.patterns[:600]))
        return step.done()
