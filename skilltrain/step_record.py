"""StepRecord: one step's evidence, written under steps/eXX-sYYY/ as it arrives.

Each stage hands its result here, so the trainer's loop stays free of bookkeeping and a reader
of the run folder finds every stage's output (rollouts, analysts, patch, selection, screening,
gate) in its own file.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from skilltrain.data import Task
from skilltrain.records import Rollout
from skilltrain.skill import Skill

if TYPE_CHECKING:
    from skilltrain.run import RunContext


class StepRecord:
    """Collects one step's evidence and writes it under steps/eXX-sYYY/ as it arrives."""

    def __init__(self, run: RunContext, epoch: int, index: int, budget: int):
        self.run = run
        self.id = f"e{epoch + 1:02d}-s{index + 1:03d}"
        self.row: dict[str, Any] = {"step": run.global_step + 1, "id": self.id,
                                    "epoch": epoch + 1, "batch": index + 1, "lr": budget}
        self._started = time.monotonic()
        self._selection: dict[str, Any] = {}
        self._checks: Any = None

    def _write(self, name: str, data: Any) -> None:
        self.run.store.write_json(f"steps/{self.id}/{name}", data)

    def rollouts(self, tasks: list[Task], rollouts: list[Rollout]) -> None:
        self.run.store.write_jsonl(f"steps/{self.id}/rollouts.jsonl",
                                   [r.model_dump() for r in rollouts])
        ok = [r for r in rollouts if r.ok]
        self.row["train_score"] = (round(sum(r.score.hard for r in ok) / len(ok), 4)
                                   if ok else None)
        self.row["train_infra_failures"] = len(rollouts) - len(ok)
        self.run.emit("rollout", step=self.row["step"], score=self.row["train_score"],
                      n=len(rollouts), failures=len(rollouts) - len(ok))

    def reflection(self, result: Any) -> None:
        self._checks = result.checks  # later stages add to it; written when the step ends
        self._write("analysts.json", {"failures": result.n_failures,
                                      "successes": result.n_successes,
                                      "failed_calls": result.failed_calls,
                                      "errors": result.errors,
                                      "patches": [p.to_json() for p in result.patches]})
        self.row["proposed"] = sum(len(p.edits) for p in result.patches)
        self.run.emit("reflect", step=self.row["step"], patches=len(result.patches),
                      edits=self.row["proposed"], failed_calls=result.failed_calls,
                      error=result.errors[0] if result.errors else None)

    def patch(self, patch: Any, aggregator: Any) -> None:
        self._write("patch.json", {**patch.to_json(), "merge_calls": aggregator.calls,
                                   "failed_merge_calls": aggregator.failed_calls,
                                   "merge_fallbacks": aggregator.fallbacks})
        self.run.emit("aggregate", step=self.row["step"], edits=len(patch.edits))

    def selection(self, sel: Any) -> None:
        self.row["selected"] = len(sel.edits)
        self._selection = {"budget": sel.budget, "proposed": sel.proposed, "ranked": sel.ranked,
                           "reasoning": sel.reasoning, "fallback": sel.fallback,
                           "autonomous": sel.autonomous}
        if sel.autonomous:
            self.row["lr_chosen"] = sel.autonomous["count"]
        self.run.emit("select", step=self.row["step"], budget=sel.budget, chosen=len(sel.edits),
                      proposed=sel.proposed)

    def update(self, update: Any) -> None:
        self._selection["edits"] = [r.to_json() for r in update.results]
        self._selection["reminders"] = update.reminders
        self._selection["note"] = update.note
        self._write("selection.json", self._selection)
        self.row["applied"] = update.applied
        self.row["candidate_hash"] = update.candidate.hash
        self.candidate = update.candidate
        self.run.emit("update", step=self.row["step"], applied=update.applied,
                      statuses=[r.status.value for r in update.results])

    def screening(self, candidates: list, result: Any) -> None:
        """Every candidate of the step with its batch screen; the chosen one is marked."""
        best = result.best
        rows = [{**c.describe(), "screen": s.to_json(),
                 "chosen": best is not None and s.index == best.index}
                for c, s in zip(candidates, result.screens)]
        self._write("screen.json", {"candidates": rows})
        self.row["candidates"] = len(candidates)
        self.row["screened_out"] = sum(not s.passed for s in result.screens)
        if best is None:
            self.row.update(outcome="screened",
                            reason="no candidate beat the incumbent on the train batch")
        else:
            self.row["chosen"] = candidates[best.index].name
        self.run.emit("screen", step=self.row["step"], candidates=len(candidates),
                      passed=sum(s.passed for s in result.screens),
                      chosen=self.row.get("chosen"),
                      deltas=[None if not s.items else round(s.delta, 3)
                              for s in result.screens])

    def decision(self, d: Any, chosen: Any = None) -> None:
        if chosen is not None:
            self.candidate = chosen.skill
            self.row.setdefault("chosen", chosen.name)
        data = {"accepted": d.accepted, "rule": d.rule, "candidate_score": d.candidate_score,
                "incumbent_score": d.incumbent_score, "items_used": d.items_used,
                "new_evaluations": d.new_evaluations, "excluded": d.excluded,
                "stopped_early": d.stopped_early, "reason": d.reason, "evidence": d.evidence,
                "candidate": getattr(chosen, "name", None),
                "candidate_hash": self.candidate.hash,
                "incumbent_hash": self.run.incumbent.skill.hash}
        self._write("gate.json", data)
        self.row.update(outcome="accepted" if d.accepted else "rejected",
                        val_candidate=d.candidate_score, val_incumbent=d.incumbent_score,
                        gate_items=d.items_used, gate_reason=d.reason)
        self.run.emit("gate", step=self.row["step"], **{k: data[k] for k in (
            "accepted", "candidate_score", "incumbent_score", "items_used", "reason")})

    def update_slow(self, candidate: Skill, analysis: str) -> None:
        self.candidate = candidate
        self._write("slow_update.json", {"analysis": analysis,
                                         "guidance": candidate.region("slow-update")})

    def skip(self, reason: str) -> StepRecord:
        self.row.update(outcome="skipped", reason=reason)
        self.run.emit("skip", step=self.row["step"], reason=reason)
        return self.done()

    def done(self) -> StepRecord:
        if self._checks is not None:
            self._write("checks.json", self._checks.to_json())
            self.row["checks"] = dict(self._checks.counts)
        self.row["wall_s"] = round(time.monotonic() - self._started, 2)
        self.row["skill_tokens"] = self.run.incumbent.skill.tokens
        return self
