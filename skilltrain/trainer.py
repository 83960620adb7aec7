"""The training loop: for each epoch, for each batch, the six stages of SPEC.md; then the epoch
boundary.

`Trainer` follows the scikit-learn contract: the constructor stores settings, `fit()` does the
work and returns self, and what was learned ends in an underscore (`best_skill_`, `summary_`).
The bookkeeping (run folder, versions, checkpoints, summary) lives in `RunContext` (run.py),
the checkpointed state in `RunState` (run_state.py); the policy (what is accepted, the final
re-gate) stays here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from skilltrain.attribution import attribute_run
from skilltrain.broken_scripts import refuse_broken
from skilltrain.config import TrainConfig, merge_overrides, parse_config
from skilltrain.data import Task, epoch_batches
from skilltrain.models.base import ChatModel, ModelError
from skilltrain.models.breaker import EndpointDown
from skilltrain.models.meter import BudgetExceeded
from skilltrain.optim import slow
from skilltrain.optim.checks import repetitive
from skilltrain.optim.examples import ExampleBudget, quoted_items
from skilltrain.optim.reflect import ProposalSettings, reflect
from skilltrain.optim.rewrite import full_rewrite
from skilltrain.optim.schedule import edit_budget
from skilltrain.optim.search import Candidate, SearchSettings, combine, propose
from skilltrain.optim.update import Update
from skilltrain.prune import prune_run
from skilltrain.records import FailureRule
from skilltrain.run import RunContext
from skilltrain.run_setup import RunParts, open_run
from skilltrain.screening import ScreenResult, screen_one
from skilltrain.sealed import Look
from skilltrain.skill import Edit, Skill
from skilltrain.step_record import Outcome, StepRecord


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
        gate: Any = None,
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
        self.gate = gate
        self.callbacks = list(callbacks)
        self.replay = replay

    @property
    def _failure(self) -> FailureRule:
        """Failures as the gate's metric sees them (records.FailureRule)."""
        return FailureRule(self.config.gate.metric, self.config.gate.soft_weight)

    def fit(self, tasks: Iterable[Task | dict] | None = None, skill: Skill | str | None = None
            ) -> Trainer:
        return asyncio.run(self.afit(tasks, skill))

    async def afit(self, tasks: Iterable[Task | dict] | None = None,
                   skill: Skill | str | None = None) -> Trainer:
        """Raises NothingScored when the baseline scores nothing, EndpointDown when an endpoint
        never answers; an endpoint that stops answering mid-run ends the run like a budget
        stop (summary written, checkpointed) and then raises EndpointDown with a resume hint,
        so a caller cannot mistake the cut-short run for a finished one."""
        down: EndpointDown | None = None
        parts = RunParts(target=self.target, optimizer=self.optimizer, scorer=self.scorer,
                         harness=self.harness, gate=self.gate)
        async with open_run(self.config, parts, tasks, skill, callbacks=self.callbacks,
                            replay=self.replay) as run:
            try:
                await self._train(run)
            except BudgetExceeded as exc:
                run.state.stopped = str(exc)
                run.emit("budget_stop", reason=str(exc))
            except EndpointDown as exc:
                if not exc.answered:
                    raise
                down, run.state.stopped = exc, str(exc)
                run.emit("endpoint_stop", role=exc.role, reason=str(exc))
            await self._conclude(run, await self._final_gate(run))
            self.best_skill_ = run.state.best.skill
            self.final_skill_ = run.state.incumbent.skill
            self.summary_ = run.summary
            self.run_dir_ = run.store.root
        if down is not None:
            down.note = (f"stopped after step {run.state.global_step}, checkpointed; "
                         f"`skilltrain resume {self.run_dir_}` continues the run")
            raise down
        return self

    async def _conclude(self, run: RunContext, final_gate: dict | None) -> None:
        """The end-of-run stages, each skipped when the run stopped early (they cost
        evaluations, and test is not scored then): pruning (prune.py) before the last
        evaluation, so test is scored on the pruned skill like on the others; attribution
        (attribution.py) after it, reading those test outcomes from the cache."""
        cfg, stopped = self.config.train, bool(run.state.stopped)
        pruning = await prune_run(run, cfg.prune_tries) if cfg.prune and not stopped else None
        also = {"unpruned": pruning.unpruned} if pruning and pruning.unpruned else {}

        async def analyse(look: Look) -> dict:
            attribution = await attribute_run(run, look) \
                if cfg.attribution and not stopped else None
            return {"prune": pruning.record if pruning else None, "attribution": attribution}

        await run.conclude(final_gate, also=also, analyse=analyse)

    async def _final_gate(self, run: RunContext) -> dict | None:
        """The last incumbent against the best: the loop's final version may be one the gate
        never compared with the best (a forced slow update, or later steps on top of it).
        A pruned best was built after this gate ran (a resumed run does not ask again)."""
        state = run.state
        pruned = any(v.get("pruned") and v.get("number") == state.best.number
                     for v in state.versions)
        if state.incumbent.skill.hash == state.best.skill.hash or state.stopped or pruned:
            return None
        decision = await run.gate.decide(state.incumbent.skill, state.best.skill, run.val_ids,
                                         run.evaluator)
        final = {"accepted": decision.accepted, "reason": decision.reason,
                 "candidate_score": decision.candidate_score,
                 "incumbent_score": decision.incumbent_score}
        run.emit("final_gate", **final)
        if decision.accepted:
            state.best = state.incumbent
        return final

    async def _train(self, run: RunContext) -> None:
        cfg, seed = self.config.train, self.config.seed
        per_epoch = len(epoch_batches(run.splits.train, cfg.batch_size, 0, seed))
        total = min(cfg.epochs * per_epoch, cfg.max_steps or cfg.epochs * per_epoch)
        for epoch in range(run.state.epoch, cfg.epochs):
            batches = epoch_batches(run.splits.train, cfg.batch_size, epoch, seed)
            for index in range(run.state.batch_index, len(batches)):
                if run.state.global_step >= total:
                    return
                budget = edit_budget(cfg.lr_schedule, run.state.global_step, total, cfg.lr,
                                     cfg.lr_min)
                record = await self._step(run, epoch, index, batches[index], budget)
                run.commit_step(record, next_epoch=epoch, next_batch=index + 1)
            if epoch + 1 < cfg.epochs and run.state.global_step < total:
                await self._epoch_boundary(run, epoch)
            run.commit_epoch(epoch + 1)

    async def _step(self, run: RunContext, epoch: int, index: int, batch: list[Task],
                    budget: int) -> StepRecord:
        cfg = self.config.train
        skill = run.state.incumbent.skill
        optimizer = run.optimizer.with_notes(run.state.meta_notes)
        step = run.begin_step(epoch, index, budget)

        rollouts = await run.evaluator.rollouts(skill, batch)                      # 1. rollout
        step.rollouts(batch, rollouts)
        run.meter.check()
        if cfg.update_mode == "full_rewrite":                                      # 2-5 at once
            result = await full_rewrite(
                skill, list(zip(batch, rollouts)), optimizer,
                minibatch_size=cfg.minibatch_size, rejected=run.state.rejected,
                max_tokens=cfg.max_skill_tokens, failure=self._failure)
            update = Update(base=skill, candidate=result.candidate or skill, note=result.note)
            candidates = [Candidate("rewrite", update, result.note)] if update.changed else []
            step.update(update)
        else:
            reflection = await reflect(                                            # 2. reflect
                skill, list(zip(batch, rollouts)), optimizer,
                minibatch_size=cfg.minibatch_size, budget=budget, rejected=run.state.rejected,
                analyse_successes=cfg.analyse_successes, reminders=cfg.appendix,
                ops=tuple(run.state.edit_ops), train=run.splits.train,
                search=ProposalSettings(cfg.proposals, cfg.proposal_temperature),
                failure=self._failure)
            step.reflection(reflection)
            run.meter.check()
            proposed = await propose(                                          # 3-5. candidates
                skill, reflection, optimizer, self._search_settings(budget),
                train=run.splits.train, batch=batch, seed=self.config.seed,
                failures=[(t, r) for t, r in zip(batch, rollouts) if self._failure.failed(r)])
            step.patch(proposed.aggregated)
            step.selection(proposed.selection)
            step.update(proposed.merged_update)
            run.adapt(step, reflection, proposed.merged_update)
            candidates = proposed.candidates
            run.meter.check()
        if not candidates:
            return step.skip("no edit proposed or applied")
        candidates = await refuse_broken(run, step, candidates, self.config.package)
        if not candidates:  # every one broke a package script: rejected, no evaluation spent
            return step.done()

        chosen = await self._screen(run, step, candidates, batch, rollouts)      # screening
        if chosen is None:
            return step.done()
        decision = await run.gate.decide(chosen.skill, skill, run.val_ids,      # 6. gate
                                         run.evaluator)
        step.decision(decision, chosen)
        if decision.accepted:
            run.accept(chosen.skill, step)
        else:
            run.remember_rejected(chosen.edits_for_memory(), chosen.patterns,
                                  decision.candidate_score - decision.incumbent_score)
        return step.done()

    def _search_settings(self, budget: int) -> SearchSettings:
        cfg = self.config.train
        return SearchSettings(
            budget=budget, mode=cfg.update_mode, group_size=cfg.merge_group,
            max_skill_tokens=cfg.max_skill_tokens,
            floor=cfg.lr_min if cfg.lr_schedule == "autonomous" else None,
            demonstrations=cfg.demonstrations, answer_form=cfg.answer_form,
            examples=ExampleBudget(cfg.max_examples, cfg.examples_chars),
            appendix_threshold=cfg.appendix_threshold, appendix_keep=cfg.appendix_keep)

    async def _screen(self, run: RunContext, step: StepRecord, candidates: list[Candidate],
                      batch: list[Task], rollouts: list) -> Candidate | None:
        """The best candidate on the step's own batch, or None when none beats the incumbent
        there (then the step ends `screened`). Candidates that did not beat it go to the
        rejected buffer with the reason."""
        if not self.config.train.screen:
            return candidates[0]
        batch, rollouts = _screen_items(batch, rollouts)
        quoted = quoted_items(run.state.incumbent.skill, batch)
        screens = [await screen_one(run.evaluator, i, c.skill, batch, rollouts,
                                    quoted | quoted_items(c.skill, batch))
                   for i, c in enumerate(candidates)]
        result = ScreenResult(screens)
        examples = next((c for c in candidates if c.name == "examples"), None)
        lead = ScreenResult([s for s, c in zip(screens, candidates) if c is not examples]).best
        if examples is not None and lead is not None and screens[candidates.index(examples)].passed:
            both = combine(candidates[lead.index], examples)  # both helped alone: together?
            if both is not None:
                candidates.append(both)
                screens.append(await screen_one(
                    run.evaluator, len(candidates) - 1, both.skill, batch, rollouts,
                    quoted | quoted_items(both.skill, batch)))
        best = result.best
        step.screening(candidates, result)
        for c, s in zip(candidates, screens):  # negative feedback, as a gate rejection is
            if not s.passed:
                run.remember_rejected(c.edits_for_memory(), c.patterns,
                                      s.delta if s.items else 0, screened=True)
        return None if best is None else candidates[best.index]

    async def _epoch_boundary(self, run: RunContext, epoch: int) -> None:
        """Slow update (target-facing guidance, gated unless `force`) and meta skill."""
        cfg = self.config.train
        if cfg.slow_update == "off" and not cfg.meta_skill:
            return
        previous, current = run.state.epoch_start.skill, run.state.incumbent.skill
        sample = slow.sample_tasks(run.splits.train, cfg.slow_update_samples, self.config.seed,
                                   epoch)
        before = await run.evaluator.rollouts(previous, sample)
        after = await run.evaluator.rollouts(current, sample)
        comparison = slow.compare(sample, before, after, failure=self._failure)
        record = run.begin_boundary(epoch, comparison)
        try:
            await self._slow_and_meta(run, record, previous, current, comparison, epoch)
        except ModelError as exc:
            if exc.kind == "fatal":
                raise
            record.row.outcome = Outcome.FAILED  # counted by the meter; the run goes on
            record.row.reason = f"optimizer call failed ({exc.kind})"
        run.commit_boundary(record)

    async def _slow_and_meta(self, run: RunContext, record: StepRecord, previous: Skill,
                             current: Skill, comparison: slow.Comparison, epoch: int) -> None:
        cfg = self.config.train
        optimizer = run.optimizer.with_notes(run.state.meta_notes)
        if cfg.slow_update != "off":
            candidate, analysis = await slow.slow_update(previous, current, comparison,
                                                         optimizer)
            record.update_slow(candidate, analysis)
            if cfg.slow_update == "force":
                run.accept(candidate, record, gated=False)
            else:
                decision = await run.gate.decide(candidate, current, run.val_ids, run.evaluator)
                record.decision(decision)
                if decision.accepted:
                    run.accept(candidate, record)
                else:
                    guidance = Edit(op="replace", target="(slow-update block)",
                                    content=candidate.region("slow-update") or "",
                                    source="slow_update")
                    run.remember_rejected([guidance], analysis,
                                          decision.candidate_score - decision.incumbent_score)
        if cfg.meta_skill:
            notes = await slow.meta_notes(previous, run.state.incumbent.skill, comparison,
                                          [r.to_json() for r in run.state.epoch_history(epoch)],
                                          run.state.meta_notes, optimizer)
            if repetitive(notes):  # a loop would sit in every optimizer prompt of the epoch
                record.row.checks = {"meta_notes_repetitive": 1}
            else:
                run.set_meta_notes(notes)


def _screen_items(batch: list[Task], rollouts: list, limit: int = 30) -> tuple[list[Task], list]:
    """The batch items a candidate is screened on: the first `limit` in batch order (a seeded
    shuffle). Chosen without looking at the incumbent's outcomes: picking the items it failed
    would favour every candidate by regression to the mean (bench/gate_sim.py measured a
    harmful candidate's screen pass rate going from 16% to 46% that way)."""
    return batch[:limit], rollouts[:limit]
