"""RunContext: the services one training run is handed, its state, and its bookkeeping.

The trainer's loop stays one screen long because the bookkeeping lives here: new versions,
per-step records in the run folder, the checkpoint after every step, and the end-of-run
evaluation and summary. The state itself is plain data (run_state.py); the policy (what is
accepted, the final re-gate) is the trainer's; how a run is opened lives in run_setup.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from skilltrain.data import Splits
from skilltrain.evaluation import Evaluator
from skilltrain.models.client import RoleClient
from skilltrain.models.meter import Meter
from skilltrain.optim.memory import RejectedEntry
from skilltrain.run_state import RunState, Version
from skilltrain.sealed import TEST_LOOK, Look, tally
from skilltrain.skill import Skill
from skilltrain.step_record import Outcome, StepRecord, StepRow
from skilltrain.store import SUMMARY_FILE, RunStore


@dataclass
class RunContext:
    """The services a run is handed (store, splits, models, meter, gate) and its `state`.

    The methods are bookkeeping only: an event, a new version, a rejected entry, a checkpoint,
    the summary. What to accept and when is the trainer's."""

    store: RunStore
    splits: Splits
    evaluator: Evaluator
    target: RoleClient
    optimizer: RoleClient
    meter: Meter
    gate: Any
    val_ids: list[str]
    state: RunState
    callbacks: list[Callable[[dict], None]] = field(default_factory=list)
    adapt_enabled: bool = True
    summary: dict = field(default_factory=dict)
    limits_before: dict = field(default_factory=dict)  # rate-limit counters of earlier processes

    # -- what a StepRecord writes through (step_record.StepSink) ---------------
    @property
    def incumbent_skill(self) -> Skill:
        return self.state.incumbent.skill

    def emit(self, kind: str, **data: Any) -> None:
        record = self.store.event(kind, **data)
        for callback in self.callbacks:
            callback(record)

    def tick(self, done: int, total: int) -> None:
        """Rollout progress for live displays; too fine-grained for events.jsonl."""
        for callback in self.callbacks:
            callback({"event": "progress", "done": done, "total": total})

    def throttle(self, role: str, status: str | None) -> None:
        """A role's rate limiter holding calls back ("429 x3, concurrency 16->4, waiting
        2.0 s for rpm"), or None once it no longer is: for live displays, like `tick`."""
        for callback in self.callbacks:
            callback({"event": "throttle", "role": role, "status": status})

    # -- steps ---------------------------------------------------------------
    def begin_step(self, epoch: int, index: int, budget: int) -> StepRecord:
        step = self.state.global_step + 1
        self.emit("step_start", step=step, epoch=epoch + 1, batch=index + 1, lr=budget)
        return StepRecord(self, step, epoch, index, budget)

    def accept(self, skill: Skill, step: StepRecord, gated: bool = True) -> None:
        """A new incumbent. Only a gated one becomes `best` (the skill we would ship)."""
        state = self.state
        number = len(state.versions)
        self.store.save_skill(number, skill)
        state.incumbent = Version(number, skill, step.row.step or state.global_step)
        state.versions.append({**state.incumbent.to_json(), "accepted": True, "gated": gated})
        step.row.version = number
        if gated:
            state.best = state.incumbent
            self.store.write_best(skill)
        else:
            step.row.outcome = Outcome.FORCED

    def remember_rejected(self, edits: list, patterns: str, delta: float, *,
                          screened: bool = False, reason: str = "") -> None:
        """A rejected candidate as negative feedback for later analysts; one screened out on
        the train batch is marked, so they know where it failed; `reason` says why one was
        refused before any evaluation (a package script that does not compile)."""
        prefix = "(screened out on the train batch) " if screened else ""
        self.state.rejected.add(RejectedEntry(step=self.state.global_step + 1, edits=edits,
                                              patterns=(prefix + patterns)[:600],
                                              delta=round(delta, 4), reason=reason[:600]))

    def adapt(self, step: StepRecord, reflection: Any, update: Any) -> None:
        """Narrow the edit operations to `append` when this optimizer cannot place anchored
        edits (most miss even after the anchor ladder) or its replies keep failing; the change
        and its reason go to the step row, the summary and the checkpoint."""
        state = self.state
        if not self.adapt_enabled or state.edit_ops == ["append"]:
            return
        anchored = [r for r in update.results if r.edit.op != "append"]
        missed = sum(not r.status.landed for r in anchored)
        calls = len(reflection.patches) + reflection.failed_calls
        why = None
        if len(anchored) >= 2 and missed * 2 > len(anchored):
            why = f"{missed} of {len(anchored)} anchored edits did not land"
        elif calls and reflection.failed_calls * 2 > calls:
            why = f"{reflection.failed_calls} of {calls} analyst replies failed"
        if why is None:
            return
        change = {"step": step.row.step, "change": "edit_ops: append only",
                  "was": list(state.edit_ops), "why": why}
        state.edit_ops = ["append"]
        state.adaptations.append(change)
        step.row.adapted = change["change"]
        self.emit("adapt", **change)

    # -- epoch boundary --------------------------------------------------------
    def begin_boundary(self, epoch: int, comparison: Any) -> StepRecord:
        record = StepRecord(self, self.state.global_step + 1, epoch, 0, 0)
        record.id = f"e{epoch + 1:02d}-boundary"
        record.row = StepRow(step=record.row.step, id=record.id, epoch=epoch + 1,
                             kind="epoch_boundary", comparison=comparison.counts)
        record._write("comparison.json", {"labels": comparison.labels,
                                          "counts": comparison.counts})
        self.emit("epoch_boundary", epoch=epoch + 1, **comparison.counts)
        return record

    def set_meta_notes(self, notes: str) -> None:
        self.state.meta_notes = notes
        self.store.write_text(f"meta/epoch{self.state.epoch + 2:02d}.md", notes + "\n")
        self.emit("meta_skill", chars=len(notes))

    def commit_boundary(self, record: StepRecord) -> None:
        if record.row.outcome is None and record.row.val_candidate is None:
            record.row.outcome = Outcome.NO_SLOW_UPDATE
        self.state.history.append(record.done().row)
        self.state.epoch_start = self.state.incumbent
        self.emit("slow_update", outcome=_value(record.row.outcome))

    def commit_step(self, record: StepRecord, *, next_epoch: int, next_batch: int) -> None:
        state = self.state
        state.history.append(record.row)
        state.global_step += 1
        state.epoch, state.batch_index = next_epoch, next_batch
        self.emit("step_end", **record.row.to_json(),
                  accepted_total=state.count(Outcome.ACCEPTED),
                  rejected_total=state.count(Outcome.REJECTED),
                  tokens=self.meter.total().total_tokens,
                  cost_usd=round(self.meter.total_cost(), 6))
        self.checkpoint()

    def commit_epoch(self, next_epoch: int) -> None:
        self.state.epoch, self.state.batch_index = next_epoch, 0
        self.emit("epoch_end", epoch=next_epoch)
        self.checkpoint()

    # -- checkpoint ----------------------------------------------------------
    def checkpoint(self, done: bool = False) -> None:
        data = self.state.to_json(meter=self.meter.state(), done=done)
        data["rate_limits"] = self.rate_limits()
        self.store.save_state(data)

    def rate_limits(self) -> dict[str, dict]:
        """Each role's limiter counters over the whole run: this process's plus what earlier
        ones (before a resume) checkpointed, so 429s and waits are not forgotten on resume."""
        now = {c.role: c.limiter.stats.to_json() for c in (self.target, self.optimizer)
               if c.limiter is not None}
        return {role: _add_limits(self.limits_before.get(role), now.get(role))
                for role in sorted({*self.limits_before, *now})}

    def restore(self, data: dict) -> None:
        """The checkpointed state in place of the fresh one (same initial skill, buffer size
        and configured edit operations)."""
        start = self.state.initial.skill  # a package's budgets and switches: the run's own
        self.state = RunState.from_json(data, self.state.initial,
                                        lambda n: self.store.load_skill(n, like=start),
                                        self.state.rejected.capacity, self.state.edit_ops)
        self.meter.restore(data["meter"])
        self.limits_before = dict(data.get("rate_limits") or {})

    # -- end of run ----------------------------------------------------------
    async def conclude(self, final_gate: dict | None, *, also: dict[str, Skill] | None = None,
                       analyse: Callable[[Look], Awaitable[dict]] | None = None) -> None:
        """Score initial, best and final skill (and `also`, e.g. the unpruned best) on val (and
        test unless stopped), add what `analyse` measures (attribution), record this one look
        at test (sealed.py), write the summary and the last checkpoint."""
        state = self.state
        self.store.write_best(state.best.skill)
        skills = {"initial": state.initial.skill, "best": state.best.skill,
                  "final": state.incumbent.skill, **(also or {})}
        val = {name: await self.evaluator.mean(s, self.splits.val)
               for name, s in skills.items()}
        test: dict[str, Any] = {}
        look = Look("conclude", items=len(self.splits.test))
        if self.splits.test and not state.stopped:
            test = {name: await self.evaluator.mean(s, self.splits.test)
                    for name, s in skills.items()}
            for name, s in skills.items():
                look.add(s.hash, name)
        self.summary = build_summary(self, val, test)
        self.summary["final_gate"] = final_gate
        if analyse is not None:
            self.summary.update(await analyse(look))
        if look.skills:
            self.emit(TEST_LOOK, **look.to_json())
        self.summary.update(tally(self.store.events()))
        self.store.write_json(SUMMARY_FILE, self.summary)
        self.checkpoint(done=True)
        self.emit("end", **{k: self.summary[k] for k in ("val", "test", "steps")})


def _value(outcome: Outcome | None) -> str | None:
    return None if outcome is None else outcome.value


def build_summary(run: RunContext, val: dict, test: dict) -> dict:
    usage = run.meter.summary()
    state = run.state
    steps = [r for r in state.history if r.kind is None]

    def scores(d: dict) -> dict:
        return {k: v["score"] for k, v in d.items()}

    return {
        "val": scores(val),
        "test": scores(test) if test else {"initial": None, "best": None, "final": None},
        "test_by_type": {k: v["by_type"] for k, v in test.items()},
        "delta": {
            "val": _delta(val, "best", "initial"),
            "test": _delta(test, "best", "initial") if test else None,
        },
        "steps": {"total": state.global_step,
                  **{o.value: state.count(o) for o in (Outcome.ACCEPTED, Outcome.REJECTED,
                                                       Outcome.SCREENED, Outcome.SKIPPED)}},
        "candidates": {"total": sum(r.candidates or 0 for r in steps),
                       "screened_out": sum(r.screened_out or 0 for r in steps),
                       "chosen": dict(Counter(r.chosen for r in steps if r.chosen))},
        "checks": dict(sum((Counter(r.checks or {}) for r in state.history), Counter())),
        "adaptations": state.adaptations,
        "slow_updates": {o.value: state.count(o, "epoch_boundary")
                         for o in (Outcome.ACCEPTED, Outcome.REJECTED, Outcome.FORCED)},
        "usage": {role: {k: u[k] for k in ("prompt_tokens", "completion_tokens", "calls",
                                           "cache_read_tokens", "cache_write_tokens",
                                           "cost_usd") if k in u}  # cache: when non-zero
                  for role, u in usage["roles"].items()},
        "usage_by_stage": usage["stages"],
        "prompt_cache": usage["prompt_cache"],
        "usage_trusted": usage["warning"] is None,  # False: counted from a checkpoint
        "usage_warning": usage["warning"],
        "cost_usd": usage["cost_usd"],
        "billed_cost_usd": usage["billed_cost_usd"],
        "infra_failures": {"total": sum(usage["infra_failures"].values()),
                           "by_kind": usage["infra_failures"], "retried": usage["retries"]},
        "cache_hits": usage["cache_hits"],
        "rate_limits": run.rate_limits(),
        "best_version": state.best.number,
        "best_skill": str(run.store.best_path),
        "skill_tokens": {"initial": state.initial.skill.tokens, "best": state.best.skill.tokens},
        "stopped": state.stopped,
        "wall_s": round(state.wall_s(), 1),
        "sizes": {"train": len(run.splits.train), "val": len(run.splits.val),
                  "test": len(run.splits.test)},
    }


def _add_limits(a: dict | None, b: dict | None) -> dict:
    """Two LimiterStats.to_json() dicts as one: counts and seconds add up, the lowest
    concurrency is the lower of the two."""
    if not a or not b:
        return dict(a or b or {})
    out = {k: a.get(k, 0) + b.get(k, 0) for k in ("rate_limited", "waits", "concurrency_cuts")}
    out["wait_s"] = round(a.get("wait_s", 0.0) + b.get("wait_s", 0.0), 2)
    out["lowest_concurrency"] = min(a.get("lowest_concurrency", 0),
                                    b.get("lowest_concurrency", 0))
    reasons = dict(a.get("waits_by_reason") or {})
    for reason, n in (b.get("waits_by_reason") or {}).items():
        reasons[reason] = reasons.get(reason, 0) + n
    out["waits_by_reason"] = reasons
    return out


def _delta(d: dict, a: str, b: str) -> float | None:
    x, y = d.get(a, {}).get("score"), d.get(b, {}).get("score")
    return None if x is None or y is None else round(x - y, 4)
