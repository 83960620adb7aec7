"""StepRecord: one step's evidence, written under steps/eXX-sYYY/ as it arrives, and StepRow,
the typed line it adds to the run's history.

Each stage hands its result here, so the trainer's loop stays free of bookkeeping and a reader
of the run folder finds every stage's output (rollouts, analysts, patch, selection, screening,
gate) in its own file. The record writes through a `StepSink` (the run store, the event stream
and the incumbent), not the whole run, so this module knows nothing of the run above it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any, Protocol

from skilltrain.data import Task
from skilltrain.records import Rollout
from skilltrain.skill import Skill
from skilltrain.store import GATE_FILE, SELECTION_FILE, SLOW_UPDATE_FILE, step_file


class Outcome(str, Enum):
    """How a step (or an epoch boundary's slow update) ended. A str, so rows stay plain JSON."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SCREENED = "screened"  # no candidate beat the incumbent on the train batch
    SKIPPED = "skipped"  # nothing to try
    FORCED = "forced"  # installed without the gate (slow_update: force)
    NO_SLOW_UPDATE = "no_slow_update"
    FAILED = "failed"  # an optimizer call failed; `reason` says which kind


# Written on every row (a boundary row has batch and lr null); the rest only when set.
_ALWAYS = ("step", "id", "epoch", "batch", "lr")


@dataclass
class StepRow:
    """One line of the run's history (state.json `history`, events, the report)."""

    step: int | None
    id: str
    epoch: int
    batch: int | None = None
    lr: int | None = None
    kind: str | None = None  # None: a training step; "epoch_boundary"
    outcome: Outcome | None = None
    reason: str | None = None
    train_score: float | None = None
    train_infra_failures: int | None = None
    proposed: int | None = None
    selected: int | None = None
    lr_chosen: int | None = None
    applied: int | None = None
    candidate_hash: str | None = None
    candidates: int | None = None
    screened_out: int | None = None
    chosen: str | None = None
    adapted: str | None = None
    val_candidate: float | None = None
    val_incumbent: float | None = None
    gate_items: int | None = None
    gate_reason: str | None = None
    version: int | None = None
    comparison: dict[str, int] | None = None
    checks: dict[str, int] | None = None
    wall_s: float | None = None
    skill_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer version wrote

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items()
                if k != "extra" and (k in _ALWAYS or v is not None)}
        if self.outcome is not None:
            data["outcome"] = self.outcome.value
        return {**data, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRow:
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        if known.get("outcome") is not None:
            try:
                known["outcome"] = Outcome(known["outcome"])
            except ValueError:  # older runs wrote "failed (kind)"
                if not str(known["outcome"]).startswith("failed"):
                    raise
                known["reason"] = known.get("reason") or str(known["outcome"])
                known["outcome"] = Outcome.FAILED
        return cls(**{"step": None, "id": "", "epoch": 0, **known},
                   extra={k: v for k, v in data.items() if k not in names})

    @property
    def is_boundary(self) -> bool:
        return self.kind == "epoch_boundary"


class StepSink(Protocol):
    """What a record writes through: the run folder, the event stream, the incumbent."""

    @property
    def store(self) -> Any: ...

    @property
    def incumbent_skill(self) -> Skill: ...

    def emit(self, kind: str, **data: Any) -> None: ...


class StepRecord:
    """Collects one step's evidence and writes it under steps/eXX-sYYY/ as it arrives."""

    def __init__(self, sink: StepSink, step: int, epoch: int, index: int, budget: int):
        self.run = sink
        self.id = f"e{epoch + 1:02d}-s{index + 1:03d}"
        self.row = StepRow(step=step, id=self.id, epoch=epoch + 1, batch=index + 1, lr=budget)
        self._started = time.monotonic()
        self._selection: dict[str, Any] = {}
        self._checks: Any = None

    def _write(self, name: str, data: Any) -> None:
        self.run.store.write_json(step_file(self.id, name), data)

    def rollouts(self, tasks: list[Task], rollouts: list[Rollout]) -> None:
        self.run.store.write_jsonl(step_file(self.id, "rollouts.jsonl"),
                                   [r.model_dump() for r in rollouts])
        ok = [r for r in rollouts if r.ok]
        self.row.train_score = (round(sum(r.score.hard for r in ok) / len(ok), 4)
                                if ok else None)
        self.row.train_infra_failures = len(rollouts) - len(ok)
        self.run.emit("rollout", step=self.row.step, score=self.row.train_score,
                      n=len(rollouts), failures=len(rollouts) - len(ok))

    def reflection(self, result: Any) -> None:
        self._checks = result.checks  # later stages add to it; written when the step ends
        self._write("analysts.json", {"failures": result.n_failures,
                                      "successes": result.n_successes,
                                      "failed_calls": result.failed_calls,
                                      "errors": result.errors,
                                      "patches": [p.to_json() for p in result.patches]})
        self.row.proposed = sum(len(p.edits) for p in result.patches)
        self.run.emit("reflect", step=self.row.step, patches=len(result.patches),
                      edits=self.row.proposed, failed_calls=result.failed_calls,
                      error=result.errors[0] if result.errors else None)

    def patch(self, aggregated: Any) -> None:
        patch = aggregated.patch
        self._write("patch.json", {**patch.to_json(), "merge_calls": aggregated.calls,
                                   "failed_merge_calls": aggregated.failed_calls,
                                   "merge_fallbacks": aggregated.fallbacks})
        self.run.emit("aggregate", step=self.row.step, edits=len(patch.edits))

    def selection(self, sel: Any) -> None:
        self.row.selected = len(sel.edits)
        self._selection = {"budget": sel.budget, "proposed": sel.proposed, "ranked": sel.ranked,
                           "reasoning": sel.reasoning, "fallback": sel.fallback,
                           "autonomous": sel.autonomous}
        if sel.autonomous:
            self.row.lr_chosen = sel.autonomous["count"]
        self.run.emit("select", step=self.row.step, budget=sel.budget, chosen=len(sel.edits),
                      proposed=sel.proposed)

    def update(self, update: Any) -> None:
        self._selection["edits"] = [r.to_json() for r in update.results]
        self._selection["reminders"] = update.reminders
        self._selection["note"] = update.note
        self._write(SELECTION_FILE, self._selection)
        self.row.applied = update.applied
        self.row.candidate_hash = update.candidate.hash
        self.candidate = update.candidate
        self.run.emit("update", step=self.row.step, applied=update.applied,
                      statuses=[r.status.value for r in update.results])

    def screening(self, candidates: list, result: Any) -> None:
        """Every candidate of the step with its batch screen; the chosen one is marked."""
        best = result.best
        rows = [{**c.describe(), "screen": s.to_json(),
                 "chosen": best is not None and s.index == best.index}
                for c, s in zip(candidates, result.screens)]
        self._write("screen.json", {"candidates": rows})
        self.row.candidates = len(candidates)
        self.row.screened_out = sum(not s.passed for s in result.screens)
        if best is None:
            self.row.outcome = Outcome.SCREENED
            self.row.reason = "no candidate beat the incumbent on the train batch"
        else:
            self.row.chosen = candidates[best.index].name
        self.run.emit("screen", step=self.row.step, candidates=len(candidates),
                      passed=sum(s.passed for s in result.screens),
                      chosen=self.row.chosen,
                      deltas=[None if not s.items else round(s.delta, 3)
                              for s in result.screens])

    def decision(self, d: Any, chosen: Any = None) -> None:
        if chosen is not None:
            self.candidate = chosen.skill
            self.row.chosen = self.row.chosen or chosen.name
        data = {"accepted": d.accepted, "rule": d.rule, "candidate_score": d.candidate_score,
                "incumbent_score": d.incumbent_score, "items_used": d.items_used,
                "new_evaluations": d.new_evaluations, "excluded": d.excluded,
                "stopped_early": d.stopped_early, "reason": d.reason, "evidence": d.evidence,
                "candidate": getattr(chosen, "name", None),
                "candidate_hash": self.candidate.hash,
                "incumbent_hash": self.run.incumbent_skill.hash}
        self._write(GATE_FILE, data)
        row = self.row
        row.outcome = Outcome.ACCEPTED if d.accepted else Outcome.REJECTED
        row.val_candidate, row.val_incumbent = d.candidate_score, d.incumbent_score
        row.gate_items, row.gate_reason = d.items_used, d.reason
        self.run.emit("gate", step=self.row.step, **{k: data[k] for k in (
            "accepted", "candidate_score", "incumbent_score", "items_used", "reason")})

    def update_slow(self, candidate: Skill, analysis: str) -> None:
        self.candidate = candidate
        self._write(SLOW_UPDATE_FILE, {"analysis": analysis,
                                         "guidance": candidate.region("slow-update")})

    def skip(self, reason: str) -> StepRecord:
        self.row.outcome, self.row.reason = Outcome.SKIPPED, reason
        self.run.emit("skip", step=self.row.step, reason=reason)
        return self.done()

    def done(self) -> StepRecord:
        if self._checks is not None:
            self._write("checks.json", self._checks.to_json())
            self.row.checks = dict(self._checks.counts)
        self.row.wall_s = round(time.monotonic() - self._started, 2)
        self.row.skill_tokens = self.run.incumbent_skill.tokens
        return self
