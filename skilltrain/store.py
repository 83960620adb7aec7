"""The run folder: everything a user reads afterwards, and everything a resume needs.

Layout:
    config.yaml          the run's settings, secrets redacted
    events.jsonl         one JSON line per thing that happened
    skills/v0000.md ...  every skill version (v0000 is the initial skill); a skill package's
                         versions are folders, skills/v0000/ ... with every file
    steps/e01-s001/      per step: rollouts.jsonl, patch.json, selection.json, gate.json
    best_skill.md        the skill to ship (a package: best_skill/, the folder to ship)
    summary.json         scores, step counts, usage and cost, infrastructure failures
    run.sqlite           per-item score cache and the response cache
    state.json           the checkpoint a resume starts from

Files are written to a temporary name and renamed into place, so a reader never sees half a file.
The folder holds every prompt and reply, so it is private: directories 0700, files 0600 (the
SQLite -wal/-shm files inherit the database's mode). Every known secret is scrubbed from what is
written, because endpoints echo keys back in their error texts.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skilltrain.config import ConfigError
from skilltrain.files import atomic_write
from skilltrain.package import SkillPackage, read_package
from skilltrain.records import Rollout, Score
from skilltrain.redaction import REDACTED
from skilltrain.skill import MAIN_FILE, Skill

# -- the layout: every name in a run folder is spelled here, and read from here ---------------
CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
STATE_FILE = "state.json"
SUMMARY_FILE = "summary.json"
BEST_SKILL_FILE = "best_skill.md"
BEST_PACKAGE_DIR = "best_skill"
DATABASE_FILE = "run.sqlite"
REPORT_FILE = "report.html"
SKILLS_DIR = "skills"
STEPS_DIR = "steps"
# the per-step files the report reads back (a step writes more)
SELECTION_FILE, GATE_FILE, SLOW_UPDATE_FILE = "selection.json", "gate.json", "slow_update.json"
SCRIPTS_FILE = "scripts.json"  # a package step's script checks (broken_scripts.py)


def skill_name(version: int) -> str:
    """A skill version's file name; v0000.md is the initial skill."""
    return f"v{version:04d}.md"


def skill_file(version: int) -> str:
    """A skill version's path relative to the run folder (what `RunStore.path` takes)."""
    return f"{SKILLS_DIR}/{skill_name(version)}"


def skill_dir(version: int) -> str:
    """A package version's folder relative to the run folder (skills/v0003)."""
    return f"{SKILLS_DIR}/v{version:04d}"


def step_file(step_id: str, name: str) -> str:
    """One step's file relative to the run folder, e.g. steps/e01-s001/gate.json."""
    return f"{STEPS_DIR}/{step_id}/{name}"


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


FILE_MODE, DIR_MODE = 0o600, 0o700
SHORTEST_SECRET = 8  # shorter strings are no issued key and would match ordinary text


class Scrubber:
    """Replaces every known secret (and its JSON-escaped form) with the redaction marker."""

    def __init__(self, secrets: Iterable[str] = ()):
        found = {s for s in secrets if len(s) >= SHORTEST_SECRET}
        found |= {json.dumps(s)[1:-1] for s in found}
        self._secrets = sorted(found, key=len, reverse=True)  # longest first: no partial leak

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def private(path: Path) -> None:
    """chmod a run-folder entry to its private mode, whatever the umask made of it."""
    if path.exists() and not path.is_symlink():
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)


class ScoreCache:
    """(skill hash, task id, sample) -> scored rollout. A skill is never scored twice on an item.

    Only successful rollouts are stored: an infrastructure failure is not a score, so a later
    request (or a resumed run) tries again.
    """

    def __init__(self, db: sqlite3.Connection, scrub: Scrubber | None = None):
        self._db = db
        self._scrub = scrub or Scrubber()
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
             self._scrub(rollout.model_dump_json())),
        )

    def count(self, skill_hash: str | None = None) -> int:
        if skill_hash is None:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM scores WHERE skill_hash=?",
                                (skill_hash,)).fetchone()[0]


class RunStore:
    """The run folder. `secrets` are scrubbed from everything written through it."""

    def __init__(self, root: str | Path, secrets: Iterable[str] = ()):
        self.root = Path(root)
        self.scrub = Scrubber(secrets)
        was_run = (self.root / CONFIG_FILE).is_file()
        if not self.root.is_dir():
            self.root.mkdir(parents=True, mode=DIR_MODE)
            was_run = True  # ours: private like the rest
        if was_run:
            self._tighten()
        self.db_path = self.root / DATABASE_FILE
        if not self.db_path.exists():  # created 0600 so that -wal and -shm are too
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        self.db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.scores = ScoreCache(self.db, self.scrub)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ConfigError(f"{self.db_path}: not a readable SQLite database ({exc}); move it "
                              "away to resume without its caches") from None
        self._tighten_db()

    def _tighten(self) -> None:
        """An existing run folder (perhaps written before files were private) is made private:
        only the folder itself and what is under it, never the folders above."""
        private(self.root)
        for base, dirs, files in os.walk(self.root):
            for name in dirs + files:
                private(Path(base) / name)

    def _tighten_db(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            p = self.db_path.with_name(self.db_path.name + suffix)
            if p.exists() and stat.S_IMODE(p.stat().st_mode) != FILE_MODE:
                private(p)

    def _mkdirs(self, path: Path) -> None:
        """Create the folders between the root and `path` private (mkdir's mode obeys umask)."""
        missing = []
        while path != self.root and not path.exists():
            missing.append(path)
            path = path.parent
        for p in reversed(missing):
            p.mkdir(mode=DIR_MODE, exist_ok=True)
            private(p)

    # -- plain files -------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def best_path(self) -> Path:
        """The skill to ship: rewritten whenever the best version changes (a package's is the
        best_skill/ folder)."""
        package = self.path(BEST_PACKAGE_DIR)
        return package if package.is_dir() else self.path(BEST_SKILL_FILE)

    def write_best(self, skill: Any) -> Path:
        if isinstance(skill, SkillPackage):
            return self.write_package(BEST_PACKAGE_DIR, skill)
        return self.write_text(BEST_SKILL_FILE, skill.text)

    def write_package(self, rel: str, skill: SkillPackage) -> Path:
        """A package as a folder, built beside its place and renamed into it, so a reader sees
        the old version or the new one, never half of one."""
        final = self.path(rel)
        fresh, old = final.with_name(f".{final.name}.new"), final.with_name(f".{final.name}.old")
        for leftover in (fresh, old):
            shutil.rmtree(leftover, ignore_errors=True)
        self._mkdirs(fresh)
        for path, content in {MAIN_FILE: skill.text, **skill.resources()}.items():
            target = fresh / path
            if fresh.resolve() not in target.resolve().parents:  # paths were checked; still
                raise ValueError(f"{path}: a package path outside its folder")
            if isinstance(content, bytes):
                self._mkdirs(target.parent)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
            else:
                self.write_text(str(target.relative_to(self.root)), content)
        if final.exists():
            final.rename(old)
        fresh.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def write_text(self, rel: str, text: str) -> Path:
        p = self.path(rel)
        self._mkdirs(p.parent)
        atomic_write(p, self.scrub(text))  # mkstemp: created 0600
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
        """Append one event; the record returned (what callbacks show) is the scrubbed one."""
        record = {"time": round(time.time(), 3), "event": kind, **data}
        line = json.dumps(record, ensure_ascii=False, default=str)
        clean = self.scrub(line)
        fd = os.open(self.path(EVENTS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fd, FILE_MODE)
            fh.write(clean + "\n")
            fh.flush()
            os.fsync(fd)
        return record if clean == line else json.loads(clean)

    def events(self) -> list[dict]:
        return read_events(self.path(EVENTS_FILE))

    # -- skills ------------------------------------------------------------
    def save_skill(self, version: int, skill: Skill) -> Path:
        if isinstance(skill, SkillPackage):
            return self.write_package(skill_dir(version), skill)
        return self.write_text(skill_file(version), skill.text)

    def load_skill(self, version: int, like: Skill | None = None) -> Skill:
        """A saved version; a package's takes its budgets and switches from `like` (the run's
        starting package), which the folder does not hold."""
        folder = self.path(skill_dir(version))
        if folder.is_dir():
            return read_package(folder, like.limits if isinstance(like, SkillPackage) else None)
        return Skill(self.path(skill_file(version)).read_text(encoding="utf-8"))

    # -- checkpoint --------------------------------------------------------
    def save_state(self, state: dict) -> None:
        self.write_json(STATE_FILE, state)

    def load_state(self) -> dict | None:
        p = self.path(STATE_FILE)
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None

    def close(self) -> None:
        self.db.close()
        self._tighten_db()
