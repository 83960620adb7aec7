"""A patch: the optimizer's edits with the patterns (and stated rule) that motivated them."""

from __future__ import annotations

from dataclasses import dataclass, field

from skilltrain.skill import MAIN_FILE, Edit


@dataclass
class Patch:
    side: str  # "failure", "success" or "merged"
    edits: list[Edit] = field(default_factory=list)
    patterns: str = ""
    rule: str = ""  # the general rule a failure analyst stated before proposing edits
    proposal: int = 0  # which of the step's proposals (analyst sample) it came from

    def to_json(self) -> dict:
        return {"side": self.side, "proposal": self.proposal, "patterns": self.patterns,
                "rule": self.rule, "edits": [e.model_dump() for e in self.edits]}

    @classmethod
    def from_json(cls, data: dict) -> Patch:
        return cls(side=data["side"], patterns=data.get("patterns", ""),
                   rule=data.get("rule", ""), proposal=data.get("proposal", 0),
                   edits=[Edit(**e) for e in data.get("edits", [])])


def render_edits(edits: list[Edit], numbered: bool = False) -> str:
    lines = []
    for i, e in enumerate(edits, start=1):
        head = f"{i}. " if numbered else "- "
        where = "" if e.file == MAIN_FILE else f" file={e.file}"
        lines.append(
            f"{head}op={e.op}{where} support={e.support} source={e.source}\n"
            + (f"   target: {e.target!r}\n" if e.op != "append" else "")
            + (f"   content: {e.content!r}\n" if e.op != "delete" else "")
            + (f"   rationale: {e.rationale}" if e.rationale else "")
        )
    return "\n".join(lines) if lines else "(none)"
