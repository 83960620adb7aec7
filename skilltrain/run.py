"""RunContext: what one training run knows, how it is checkpointed and finished.

The trainer's loop stays one screen long because the bookkeeping lives here: the incumbent and
best skill versions, per-step records in the run folder, the checkpoint after every step, and
the end-of-run evaluation and summary. How a run is opened lives in run_setup.py.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skilltrain.data import Splits
from skilltrain.evaluation import Evaluator
from skilltrain.models.client import RoleClient
from skilltrain.models.meter import Meter
from skilltrain.optim.memory import RejectedBuffer, RejectedEntry
from skilltrain.skill import Skill
from skilltrain.step_record import StepRecord
from skilltrain.store import RunStore

if TYPE_CHECKING:
    from skilltrain.trainer import Trainer


@dataclass
class Version:
    number: int
    skill: Skill
    step: int  # the global step that produced it (0 = initial)

    def to_json(self) -> dict:
        return {"number": self.number, "hash": self.skill.hash, "step": self.step}


@dataclass
class RunContext:
    trainer: Trainer
    store: RunStore
    splits: Splits
    evaluator: Evaluator
    target: RoleClient
    optimizer: RoleClient
    meter: Meter
    gate: Any
    val_ids: list[str]
    initial: Version
    incumbent: Version
    best: Version
    rejected: RejectedBuffer
    epoch_start: Version
    meta_notes: str = ""
    epoch: int = 0
    batch_index: int = 0
    global_step: int = 0
    versions: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    stopped: str | None = None
    summary: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    wall_before: float = 0.0
    edit_ops: list[str] = field(default_factory=list)
    adapt_enabled: bool = True
    adaptations: list[dict] = field(default_factory=list)

    # -- events --------------------------------------------------------------
    def emit(self, kind: str, **data: Any) -> None:
        record = self.store.event(kind, **data)
        for callback in self.trainer.callbacks:
            callback(record)

    def tick(self, done: int, total: int) -> None:
        """Rollout progress for live displays; too fine-grained for events.jsonl."""
        for callback in self.trainer.callbacks:
            callback({"event": "progress", "done": done, "total": total})

    # -- steps ---------------------------------------------------------------
    def begin_step(self, epoch: int, index: int, budget: int) -> StepRecord:
        self.emit("step_start", step=self.global_step + 1, epoch=epoch + 1, batch=index + 1,
                  lr=budget)
        return StepRecord(self, epoch, index, budget)

    def accept(self, skill: Skill, step: StepRecord, gated: bool = True) -> None:
        """A new incumbent. Only a gated one becomes `best` (the skill we would ship)."""
        number = len(self.versions)
        self.store.save_skill(number, skill)
        self.incumbent = Version(number, skill, step.row["step"])
        self.versions.append({**self.incumbent.to_json(), "accepted": True, "gated": gated})
        step.row["version"] = number
        if gated:
            self.best = self.incumbent
            self.store.write_text("best_skill.md", skill.text)
        else:
            step.row["outcome"] = "forced"

    def reject(self, decision: Any, edits: list, patterns: str) -> None:
        self.rejected.add(RejectedEntry(
            step=self.global_step + 1, edits=edits, patterns=patterns[:600],
            delta=round(decision.candidate_score - decision.incumbent_score, 4)))

    def reject_screened(self, edits: list, patterns: str, delta: float) -> None:
        """A candidate that did not beat the incumbent on the train batch: negative feedback
        like a gate rejection, marked so later analysts know where it failed."""
        self.rejected.add(RejectedEntry(
            step=self.global_step + 1, edits=edits, delta=round(delta, 4),
            patterns=("(screened out on the train batch) " + patterns)[:600]))

    def adapt(self, step: Any, reflection: Any, update: Any) -> None:
        """Narrow the edit operations to `append` when this optimizer cannot place anchored
        edits (most miss even after the anchor ladder) or its replies keep failing; the change
        and its reason go to the step row, the summary and the checkpoint."""
        if not self.adapt_enabled or self.edit_ops == ["append"]:
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
        change = {"step": step.row["step"], "change": "edit_ops: append only",
                  "was": list(self.edit_ops), "why": why}
        self.edit_ops = ["append"]
        self.adaptations.append(change)
        step.row["adapted"] = change["change"]
        self.emit("adapt", **change)

    # -- epoch boundary --------------------------------------------------------
    def begin_boundary(self, epoch: int, comparison: Any) -> StepRecord:
        record = StepRecord(self, epoch, 0, 0)
        record.id = f"e{epoch + 1:02d}-boundary"
        record.row.update(kind="epoch_boundary", id=record.id, batch=None, lr=None)
        record.row["comparison"] = comparison.counts
        record._write("comparison.json", {"labels": comparison.labels,
                                          "counts": comparison.counts})
        self.emit("epoch_boundary", epoch=epoch + 1, **comparison.counts)
        return record

    def set_meta_notes(self, notes: str) -> None:
        self.meta_notes = notes
        self.optimizer.notes = notes
        self.store.write_text(f"meta/epoch{self.epoch + 2:02d}.md", notes + "\n")
        self.emit("meta_skill", chars=len(notes))

    def epoch_history(self, epoch: int) -> list[dict]:
        return [r for r in self.history if r.get("epoch") == epoch + 1 and "kind" not in r]

    def commit_boundary(self, record: StepRecord) -> None:
        if "outcome" not in record.row and "val_candidate" not in record.row:
            record.row["outcome"] = "no_slow_update"
        self.history.append(record.done().row)
        self.epoch_start = self.incumbent
        self.emit("slow_update", outcome=record.row.get("outcome"))

    def commit_step(self, record: StepRecord, *, next_epoch: int, next_batch: int) -> None:
        self.history.append(record.row)
        self.global_step += 1
        self.epoch, self.batch_index = next_epoch, next_batch
        self.emit("step_end", **record.row, accepted_total=self.count("accepted"),
                  rejected_total=self.count("rejected"), tokens=self.meter.total().total_tokens,
                  cost_usd=round(self.meter.total_cost(), 6))
        self.checkpoint()

    def commit_epoch(self, next_epoch: int) -> None:
        self.epoch, self.batch_index = next_epoch, 0
        self.emit("epoch_end", epoch=next_epoch)
        self.checkpoint()

    def count(self, outcome: str, kind: str | None = None) -> int:
        """Outcomes of training steps (kind None) or of epoch-boundary slow updates."""
        return sum(1 for row in self.history
                   if row.get("outcome") == outcome and row.get("kind") == kind)

    # -- checkpoint ----------------------------------------------------------
    def checkpoint(self, done: bool = False) -> None:
        self.store.save_state({
            "epoch": self.epoch, "batch_index": self.batch_index,
            "global_step": self.global_step, "incumbent": self.incumbent.to_json(),
            "best": self.best.to_json(), "epoch_start": self.epoch_start.to_json(),
            "versions": self.versions, "history": self.history,
            "rejected": self.rejected.to_json(), "meta_notes": self.meta_notes,
            "meter": self.meter.state(), "stopped": self.stopped, "done": done,
            "edit_ops": self.edit_ops, "adaptations": self.adaptations,
            "wall_s": self.wall_before + (time.time() - self.started),
        })

    def restore(self, state: dict) -> None:
        def version(data: dict) -> Version:
            return Version(data["number"], self.store.load_skill(data["number"]), data["step"])

        self.epoch, self.batch_index = state["epoch"], state["batch_index"]
        self.global_step = state["global_step"]
        self.incumbent, self.best = version(state["incumbent"]), version(state["best"])
        self.versions, self.history = state["versions"], state["history"]
        self.rejected = RejectedBuffer.from_json(state["rejected"], self.rejected.capacity)
        self.epoch_start = version(state["epoch_start"])
        self.meta_notes = state.get("meta_notes", "")
        self.optimizer.notes = self.meta_notes
        self.meter.restore(state["meter"])
        self.wall_before = state.get("wall_s", 0.0)
        self.edit_ops = state.get("edit_ops") or self.edit_ops
        self.adaptations = state.get("adaptations", [])

    # -- end of run ----------------------------------------------------------
    async def finish(self) -> None:
        final_gate = None
        if self.incumbent.skill.hash != self.best.skill.hash and not self.stopped:
            decision = await self.gate.decide(self.incumbent.skill, self.best.skill,
                                              self.val_ids, self.evaluator)
            final_gate = {"accepted": decision.accepted, "reason": decision.reason,
                          "candidate_score": decision.candidate_score,
                          "incumbent_score": decision.incumbent_score}
            self.emit("final_gate", **final_gate)
            if decision.accepted:
                self.best = self.incumbent
        self.store.write_text("best_skill.md", self.best.skill.text)
        skills = {"initial": self.initial.skill, "best": self.best.skill,
                  "final": self.incumbent.skill}
        val = {name: await self.evaluator.mean(s, self.splits.val)
               for name, s in skills.items()}
        test: dict[str, Any] = {}
        if self.splits.test and not self.stopped:
            test = {name: await self.evaluator.mean(s, self.splits.test)
                    for name, s in skills.items()}
        self.summary = build_summary(self, val, test)
        self.summary["final_gate"] = final_gate
        self.store.write_json("summary.json", self.summary)
        self.checkpoint(done=True)
        self.emit("end", **{k: self.summary[k] for k in ("val", "test", "steps")})


def build_summary(run: RunContext, val: dict, test: dict) -> dict:
    usage = run.meter.summary()

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
        "steps": {"total": run.global_step, "accepted": run.count("accepted"),
                  "rejected": run.count("rejected"), "screened": run.count("screened"),
                  "skipped": run.count("skipped")},
        "candidates": {"total": sum(r.get("candidates", 0) for r in run.history),
                       "screened_out": sum(r.get("screened_out", 0) for r in run.history),
                       "chosen": dict(Counter(r["chosen"] for r in run.history
                                              if r.get("chosen")))},
        "checks": dict(sum((Counter(r.get("checks", {})) for r in run.history), Counter())),
        "adaptations": run.adaptations,
        "slow_updates": {k: run.count(k, "epoch_boundary")
                         for k in ("accepted", "rejected", "forced")},
        "usage": {role: {k: u[k] for k in ("prompt_tokens", "completion_tokens", "calls",
                                           "cost_usd")}
                  for role, u in usage["roles"].items()},
        "usage_by_stage": usage["stages"],
        "usage_trusted": usage["warning"] is None,  # False: counted from a checkpoint
        "usage_warning": usage["warning"],
        "cost_usd": usage["cost_usd"],
        "billed_cost_usd": usage["billed_cost_usd"],
        "infra_failures": {"total": sum(usage["infra_failures"].values()),
                           "by_kind": usage["infra_failures"], "retried": usage["retries"]},
        "cache_hits": usage["cache_hits"],
        "best_version": run.best.number,
        "best_skill": str(run.store.path("best_skill.md")),
        "skill_tokens": {"initial": run.initial.skill.tokens, "best": run.best.skill.tokens},
        "stopped": run.stopped,
        "wall_s": round(run.wall_before + (time.time() - run.started), 1),
        "sizes": {"train": len(run.splits.train), "val": len(run.splits.val),
                  "test": len(run.splits.test)},
    }


def _delta(d: dict, a: str, b: str) -> float | None:
    x, y = d.get(a, {}).get("score"), d.get(b, {}).get("score")
    return None if x is None or y is None else round(x - y, 4)
