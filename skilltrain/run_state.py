"""RunState: everything a running run knows that a checkpoint must keep, as plain data.

Kept apart from the services (store, models, gate) and from the policy (the trainer), so that a
checkpoint is `state.to_json()` and a resume is `RunState.from_json(...)`: nothing else about a
run survives a kill, and nothing else needs to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skilltrain.optim.memory import RejectedBuffer
from skilltrain.package import SkillPackage
from skilltrain.skill import Skill
from skilltrain.step_record import Outcome, StepRow


@dataclass
class Version:
    number: int
    skill: Skill
    step: int  # the global step that produced it (0 = initial)

    def to_json(self) -> dict:
        """A package's version also names each file's own version (its content hash)."""
        files = self.skill.file_hashes() if isinstance(self.skill, SkillPackage) else None
        return {"number": self.number, "hash": self.skill.hash, "step": self.step,
                **({"files": files} if files else {})}


@dataclass
class RunState:
    """Where the run is (epoch, batch, step), which skills it holds, and what it learned on the
    way (history, rejected edits, meta notes, adaptations)."""

    initial: Version
    incumbent: Version
    best: Version
    epoch_start: Version
    rejected: RejectedBuffer
    edit_ops: list[str]
    epoch: int = 0
    batch_index: int = 0
    global_step: int = 0
    versions: list[dict] = field(default_factory=list)
    history: list[StepRow] = field(default_factory=list)
    meta_notes: str = ""
    stopped: str | None = None
    adaptations: list[dict] = field(default_factory=list)
    wall_before: float = 0.0
    started: float = field(default_factory=time.time)

    @classmethod
    def new(cls, start: Skill, rejected: RejectedBuffer, edit_ops: list[str]) -> RunState:
        initial = Version(0, start, 0)
        return cls(initial=initial, incumbent=initial, best=initial, epoch_start=initial,
                   rejected=rejected, edit_ops=list(edit_ops),
                   versions=[{**initial.to_json(), "accepted": True}])

    def wall_s(self) -> float:
        return self.wall_before + (time.time() - self.started)

    def count(self, outcome: Outcome, kind: str | None = None) -> int:
        """Outcomes of training steps (kind None) or of epoch-boundary slow updates."""
        return sum(1 for row in self.history if row.outcome == outcome and row.kind == kind)

    def epoch_history(self, epoch: int) -> list[StepRow]:
        return [r for r in self.history if r.epoch == epoch + 1 and r.kind is None]

    def to_json(self, *, meter: dict, done: bool = False) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "batch_index": self.batch_index,
            "global_step": self.global_step, "incumbent": self.incumbent.to_json(),
            "best": self.best.to_json(), "epoch_start": self.epoch_start.to_json(),
            "versions": self.versions, "history": [r.to_json() for r in self.history],
            "rejected": self.rejected.to_json(), "meta_notes": self.meta_notes,
            "meter": meter, "stopped": self.stopped, "done": done,
            "edit_ops": self.edit_ops, "adaptations": self.adaptations,
            "wall_s": self.wall_s(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], initial: Version, load_skill: Callable[[int], Skill],
                  capacity: int, edit_ops: list[str]) -> RunState:
        """The state a checkpoint saved (`meter` is restored by the meter itself)."""
        def version(v: dict) -> Version:
            return Version(v["number"], load_skill(v["number"]), v["step"])

        return cls(
            initial=initial, incumbent=version(data["incumbent"]), best=version(data["best"]),
            epoch_start=version(data["epoch_start"]),
            rejected=RejectedBuffer.from_json(data["rejected"], capacity),
            edit_ops=data.get("edit_ops") or list(edit_ops), epoch=data["epoch"],
            batch_index=data["batch_index"], global_step=data["global_step"],
            versions=data["versions"], history=[StepRow.from_json(r) for r in data["history"]],
            meta_notes=data.get("meta_notes", ""), adaptations=data.get("adaptations", []),
            wall_before=data.get("wall_s", 0.0))
