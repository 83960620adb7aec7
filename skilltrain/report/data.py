"""The report's numbers: one run folder, read through `RunReader`, with what is missing noted.

A run folder may be partial (still running, interrupted, or stopped before any step); every
figure here then falls back to what the folder does hold (the checkpoint's meter before the
summary exists, the step events before the first checkpoint), and a note says what is missing,
because a half-finished run is exactly when a user wants to look.

Step rows are read in one place, `step_rows`: the rest of the report sees `StepView`s and never a
row's keys, so the rows' format can change (or become typed) there alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from skilltrain.models.meter import usage_from_checkpoint
from skilltrain.run_reader import RUN_MARKERS, RunReader
from skilltrain.sealed import tally
from skilltrain.skill import Skill
from skilltrain.store import EVENTS_FILE, STATE_FILE, SUMMARY_FILE

# How a step ended, as the rows spell it ("screened", "no_slow_update" and "failed (kind)" are
# shown as written), and the kind of row an epoch boundary's slow update writes.
ACCEPTED, REJECTED, SKIPPED, FORCED = "accepted", "rejected", "skipped", "forced"
EPOCH_BOUNDARY = "epoch_boundary"


@dataclass(frozen=True)
class StepView:
    """One history row, as much of it as the report shows. Each field is named after the row's
    key; None where the row lacks the key or holds null. Numbers are as the run wrote them
    (checked by `run_files.step_row`); the counts and reasons it does not check are Any."""

    step: float | None = None
    id: str | None = None
    kind: str | None = None
    outcome: str | None = None
    version: int | None = None
    lr: float | None = None
    lr_chosen: float | None = None
    train_score: float | None = None
    val_candidate: float | None = None
    val_incumbent: float | None = None
    skill_tokens: float | None = None
    wall_s: float | None = None
    gate_items: float | None = None
    gate_reason: Any = None
    reason: Any = None
    proposed: Any = None
    selected: Any = None
    applied: Any = None

    @property
    def is_boundary(self) -> bool:
        return self.kind == EPOCH_BOUNDARY

    @property
    def made_version(self) -> bool:
        """Whether the step installed a new incumbent (through the gate or forced past it)."""
        return self.outcome in (ACCEPTED, FORCED)


def step_rows(rows: Iterable[dict]) -> list[StepView]:
    """The only reader of step rows' keys: the field names of `StepView`."""
    keys = [f.name for f in fields(StepView)]
    return [StepView(**{k: row.get(k) for k in keys}) for row in rows]


@dataclass
class RunData:
    """Everything the report needs, read once; missing files become None or empty, plus a note."""

    reader: RunReader
    summary: dict | None = None
    state: dict | None = None
    config_text: str | None = None
    events: list[dict] = field(default_factory=list)
    history: list[StepView] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.reader.root

    @property
    def start(self) -> dict:
        """The `start` event: model names and split sizes, known even before the first step."""
        return next((e for e in self.events if e.get("event") == "start"), {})

    @property
    def final_gate(self) -> dict | None:
        """The last `final_gate` event: the final incumbent gated against the best version."""
        return next((e for e in reversed(self.events) if e.get("event") == "final_gate"), None)

    def step_file(self, step_id: str, name: str) -> dict | None:
        return self.reader.step_file(step_id, name)

    def skill_text(self, number: int) -> str | None:
        return self.reader.skill(number)

    def skill_files(self, number: int) -> dict[str, str] | None:
        """A package version's text files by path (None: a single-file version)."""
        return self.reader.skill_files(number)

    def best_skill_text(self) -> str | None:
        return self.reader.best_skill()

    def best_version(self) -> Any:
        """The best version's number: the summary's, else the checkpoint's."""
        return (self.summary or {}).get("best_version",
                                        ((self.state or {}).get("best") or {}).get("number"))

    def skill_tokens(self) -> dict:
        """Initial and best skill size; before summary.json exists, measured from skills/."""
        tokens = (self.summary or {}).get("skill_tokens")
        if tokens:
            return tokens
        best = ((self.state or {}).get("best") or {}).get("number")
        out = {}
        for name, number in (("initial", 0), ("best", best)):
            text = self.skill_text(number) if isinstance(number, int) else None
            out[name] = Skill(text).tokens if text is not None else None
        return out

    def step_counts(self) -> dict:
        """Steps in total and by outcome; before summary.json exists, counted from the rows."""
        steps = (self.summary or {}).get("steps")
        if steps is not None:
            return steps
        counts = {o: sum(1 for r in self.history if r.outcome == o)
                  for o in (ACCEPTED, REJECTED, SKIPPED)}
        return {"total": (self.state or {}).get("global_step", len(self.history)), **counts}

    def initial_val(self) -> float | None:
        """The initial skill's validation score: the summary's, else the first step's incumbent."""
        val = ((self.summary or {}).get("val") or {}).get("initial")
        if val is not None:
            return val
        return next((r.val_incumbent for r in self.history if r.val_incumbent is not None), None)

    def infra_failures(self) -> dict:
        """Infrastructure failures; before summary.json exists, from the checkpointed meter."""
        if self.summary is not None:
            return self.summary.get("infra_failures") or {}
        if self.state is None:
            return {}
        meter = usage_from_checkpoint(self.state["meter"])
        return {"total": sum(meter.failures.values()), "by_kind": meter.failures,
                "retried": meter.retries}

    def usage_by_stage(self) -> dict:
        """Usage per role/stage; before summary.json exists, tokens only (prices are applied at
        the end of the run, so the cost is unknown)."""
        stages = (self.summary or {}).get("usage_by_stage")
        if stages or self.summary is not None:
            return stages or {}
        if self.state is None:
            return {}
        meter = usage_from_checkpoint(self.state["meter"])
        return {f"{role}/{stage}": {**u.model_dump(), "cost_usd": None}
                for (role, stage), u in meter.usage.items()}


    def _summary_part(self, key: str) -> dict | None:
        part = (self.summary or {}).get(key)
        return part if isinstance(part, dict) else None

    def attribution(self) -> dict | None:
        """The best skill's edit attribution (summary `attribution`); None when off."""
        return self._summary_part("attribution")

    def pruning(self) -> dict | None:
        """The pruning stage's record (summary `prune`); None when it did not run."""
        return self._summary_part("prune")

    def test_looks(self) -> dict:
        """How often test was looked at, counted from the events, which also hold a look an
        `eval` or `compare` added after the summary was written."""
        counted = tally(self.events)
        if counted["test_seen"] or self.summary is None:
            return counted
        return {"test_looks": self._summary_part("test_looks") or {},
                "test_seen": (self.summary or {}).get("test_seen")}


def load_run(run_dir: Path) -> RunData:
    """Read a run folder: FileNotFoundError when it is not one at all, RunFileError (one line
    naming the file and field) when a file in it is not what a run writes."""
    reader = RunReader(run_dir)
    if not reader.is_run():
        names = ", ".join(RUN_MARKERS[:-1])
        raise FileNotFoundError(f"{reader.root}: not a run folder (no {names} or "
                                f"{RUN_MARKERS[-1]})")
    data = RunData(reader=reader, summary=reader.summary, state=reader.state,
                   events=reader.events, config_text=reader.config_text,
                   history=step_rows(reader.steps))
    if data.state is not None:
        data.versions = list(data.state.get("versions") or [])
    else:
        data.notes.append(f"{STATE_FILE} is missing: steps are taken from {EVENTS_FILE} and "
                          "the skill lineage cannot be shown.")
    if data.summary is None:
        stopped = (data.state or {}).get("stopped")
        why = f"the run stopped ({stopped}) before" if stopped else \
            "the run is still going, or was interrupted, before"
        data.notes.append(f"{SUMMARY_FILE} is missing: {why} its final evaluation. The "
                          "before/after scores, costs and the per-type table appear once it "
                          "finishes.")
    if not data.history:
        data.notes.append("No training step has completed yet.")
    return data
