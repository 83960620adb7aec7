"""The optimizer's memory: the rejected-edit buffer (negative feedback for later analysts).

The buffer is plain data so the run store can persist it; a resumed run shows later analysts
exactly what the uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skilltrain.optim.patch import render_edits
from skilltrain.skill import Edit


@dataclass
class RejectedEntry:
    step: int
    edits: list[Edit]
    delta: float
    patterns: str = ""
    reason: str = ""  # why it was refused before any evaluation (a broken package script)

    def to_json(self) -> dict:
        return {"step": self.step, "delta": self.delta, "patterns": self.patterns,
                "edits": [e.model_dump() for e in self.edits],
                **({"reason": self.reason} if self.reason else {})}

    @classmethod
    def from_json(cls, data: dict) -> RejectedEntry:
        return cls(step=data["step"], delta=data["delta"], patterns=data.get("patterns", ""),
                   edits=[Edit(**e) for e in data["edits"]], reason=data.get("reason", ""))


@dataclass
class RejectedBuffer:
    """Most recent rejections first in prompts; `capacity` bounds both memory and prompt size."""

    capacity: int = 8
    entries: list[RejectedEntry] = field(default_factory=list)

    def add(self, entry: RejectedEntry) -> None:
        if not entry.edits:
            return
        self.entries.append(entry)
        del self.entries[: max(0, len(self.entries) - self.capacity)]

    def render(self) -> str:
        if not self.entries:
            return ""
        parts = ["## Edits already tried that did NOT help (do not propose them again)"]
        for entry in reversed(self.entries):
            if entry.reason:
                parts.append(f"Step {entry.step}: rejected before any evaluation: "
                             f"{entry.reason[:400]}")
            else:
                parts.append(f"Step {entry.step}: validation changed by {entry.delta:+.3f}; "
                             "rejected.")
            if entry.patterns:
                parts.append(f"Motivated by: {entry.patterns[:300]}")
            parts.append(render_edits(entry.edits))
        return "\n".join(parts) + "\n"

    def to_json(self) -> list[dict]:
        return [e.to_json() for e in self.entries]

    @classmethod
    def from_json(cls, data: list[dict], capacity: int = 8) -> RejectedBuffer:
        return cls(capacity=capacity, entries=[RejectedEntry.from_json(d) for d in data])
