"""The run folder: everything a user reads afterwards, and everything a resume needs.

Layout:
    config.yaml          the run's settings, secrets redacted
    events.jsonl         one JSON line per thing that happened
    skills/v0000.md ...  every skill version (v0000 is the initial skill)
    steps/e01-s001/      per step: rollouts.jsonl, patch.json, selection.json, gate.json
    best_skill.md        the skill to ship
    summary.json         scores, step counts, usage and cost, infrastructure failures
    run.sqlite           per-item score cache and the response cache
    state.json           the checkpoint a resume starts from

Files are written to a temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from skilltrain.files import atomic_write
from skilltrain.records import Rollout, Score
from skilltrain.skill import Skill


def read_events(path: Path) -> list[dict]:
    """events.jsonl as records; a last line cut by a crash is skipped, the rest is good."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class ScoreCache:
    """(skill hash, task id, sample) -> scored rollout. A skill is never scored twice on an item.

    Only successful rollouts are stored: an infrastructure failure is not a score, so a later
    request (or a resumed run) tries again.
    """

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        db.execute(
            "CREATE TABLE IF NOT EXISTS scores (skill_hash TEXT, task_id TEXT, sample INTEGER, "
            "hard REAL, soft REAL, rollout TEXT, PRIMARY KEY (skill_hash, task_id, sample))"
        )

    def get(self, skill_hash: str, task_id: str, sample: int) -> Rollout | None:
        row = self._db.execute(
            "SELECT rollout FROM scores WHERE skill_hash=? AND task_id=? AND sample=?",
            (skill_hash, task_id, sample),
        ).fetchone()
        return Rollout.model_validate_json(row[0]) if row else None

    def put(self, rollout: Rollout) -> None:
        if not rollout.ok:
            return
        score: Score = rollout.score  # type: ignore[assignment]
        self._db.execute(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)",
            (rollout.skill_hash, rollout.task_id, rollout.sample, score.hard, score.soft,
             rollout.model_dump_json()),
        )

    def count(self, skill_hash: str | None = None) -> int:
        if skill_hash is None:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM scores WHERE skill_hash=?",
                                (skill_hash,)).fetchone()[0]


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "run.sqlite"
        self.db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.scores = ScoreCache(self.db)

    # -- plain files -------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    def write_text(self, rel: str, text: str) -> Path:
        p = self.path(rel)
        atomic_write(p, text)
        return p

    def write_json(self, rel: str, data: Any) -> Path:
        return self.write_text(rel, json.dumps(data, indent=2, ensure_ascii=False, default=str)
                               + "\n")

    def read_json(self, rel: str) -> Any:
        return json.loads(self.path(rel).read_text(encoding="utf-8"))

    def write_jsonl(self, rel: str, rows: list[dict]) -> Path:
        return self.write_text(rel, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n"
                                            for r in rows))

    def event(self, kind: str, **data: Any) -> dict:
        record = {"time": round(time.time(), 3), "event": kind, **data}
        with open(self.path("events.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return record

    def events(self) -> list[dict]:
        return read_events(self.path("events.jsonl"))

    # -- skills ------------------------------------------------------------
    def save_skill(self, version: int, skill: Skill) -> Path:
        return self.write_text(f"skills/v{version:04d}.md", skill.text)

    def load_skill(self, version: int) -> Skill:
        return Skill(self.path(f"skills/v{version:04d}.md").read_text(encoding="utf-8"))

    # -- checkpoint --------------------------------------------------------
    def save_state(self, state: dict) -> None:
        self.write_json("state.json", state)

    def load_state(self) -> dict | None:
        p = self.path("state.json")
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None

    def close(self) -> None:
        self.db.close()
