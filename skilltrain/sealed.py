"""The sealed test split: every occasion on which skills were scored on a run's test split.

Test is an honest estimate of what the shipped skill does on unseen items only while nothing
was chosen by looking at it. The end of a run looks once: `conclude` scores the skills it
reports (initial, best, final, and with pruning the unpruned best; attribution's variants of
the best) in one occasion, after every choice was made on validation. A second occasion (a
resumed run concluding again, or an `eval`/`compare` of a run's skill on its test split) can
still be useful, but a person who looks, changes the skill and looks again is tuning on test,
and the number stops meaning what it says. So each occasion is one `test_look` event in
events.jsonl: append-only and written when it happens, it survives a kill, it is kept across a
resume without touching the checkpoint, and an outside tool can add one while a run is going.
The summary and the report count them: `test_looks` (skill hash -> how often, and who looked)
and `test_seen` (the occasions; more than one is marked in the report).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skilltrain.store import CONFIG_FILE, RunStore

TEST_LOOK = "test_look"
WHO = ("conclude", "eval", "compare")


@dataclass
class Look:
    """One occasion: who looked, and which skills (hash -> what they were) it scored on test."""

    who: str
    items: int = 0
    skills: dict[str, list[str]] = field(default_factory=dict)

    def add(self, skill_hash: str, label: str) -> None:
        labels = self.skills.setdefault(skill_hash, [])
        if label not in labels:
            labels.append(label)

    def to_json(self) -> dict[str, Any]:
        return {"who": self.who, "items": self.items, "skills": self.skills}


def tally(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`test_looks` (hash -> count, who looked how often, labels) and `test_seen` (occasions)
    from a run's events. An event a newer or hand-edited run wrote in another shape is skipped:
    the count is a warning sign for the reader, not a reason to fail the report."""
    looks: dict[str, dict[str, Any]] = {}
    seen = 0
    for event in events:
        skills = event.get("skills") if event.get("event") == TEST_LOOK else None
        if not isinstance(skills, dict) or not skills:
            continue
        seen += 1
        who = str(event.get("who") or "?")
        for skill_hash, labels in skills.items():
            entry = looks.setdefault(str(skill_hash), {"count": 0, "by": {}, "labels": []})
            entry["count"] += 1
            entry["by"][who] = entry["by"].get(who, 0) + 1
            for label in labels if isinstance(labels, list) else []:
                if str(label) not in entry["labels"]:
                    entry["labels"].append(str(label))
    return {"test_looks": looks, "test_seen": seen}


def record_look(run_dir: str | Path, who: str, skills: Mapping[str, str], items: int) -> None:
    """Note that `who` (eval, compare) scored `skills` (hash -> label) on the test split of the
    run in `run_dir`. For tools outside the run: the event is appended, so it is safe while the
    run itself is writing."""
    root = Path(run_dir)
    if not (root / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{root}: not a run folder (no {CONFIG_FILE})")
    if who not in WHO:
        raise ValueError(f"who: expected one of {', '.join(WHO)}, got {who!r}")
    look = Look(who, items)
    for skill_hash, label in skills.items():
        look.add(skill_hash, label)
    store = RunStore(root)
    try:
        store.event(TEST_LOOK, **look.to_json())
    finally:
        store.close()
