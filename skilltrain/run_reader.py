"""RunReader: a run folder read back, every file checked against the shape skilltrain writes.

The writer (`RunStore`) and this reader take every name from the layout in `store`, so no other
module spells a file of the run folder; the checks are `run_files`', so a file a user edited or
broke is one `RunFileError` naming it, never a traceback. A reader never writes and never opens
run.sqlite: the report of a run that is still going must not disturb it (`RunStore` would create
the database and tighten the folder's modes).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from skilltrain.package import read_folder
from skilltrain.run_files import (
    read_events,
    read_json,
    read_text,
    state_shape,
    step_file_shape,
    summary_shape,
)
from skilltrain.skill import MAIN_FILE, SkillError
from skilltrain.store import (
    BEST_PACKAGE_DIR,
    BEST_SKILL_FILE,
    CONFIG_FILE,
    EVENTS_FILE,
    REPORT_FILE,
    STATE_FILE,
    SUMMARY_FILE,
    skill_dir,
    skill_file,
    step_file,
)

RUN_MARKERS = (CONFIG_FILE, EVENTS_FILE, STATE_FILE, SUMMARY_FILE)
"""A folder holding any of these is a run folder, perhaps one that has only just started."""


class RunReader:
    """One run folder, read-only. The whole-run files (summary, state, events, config) are read
    once, on first use, so what a caller sees is one snapshot even while the run writes on;
    skills and step files are read when asked for. Each read returns None (or an empty list)
    when the file does not exist, because a partial folder is a normal thing to read."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def best_skill_path(self) -> Path:
        """best_skill.md, or a package's best_skill/ folder."""
        package = self.path(BEST_PACKAGE_DIR)
        return package if package.is_dir() else self.path(BEST_SKILL_FILE)

    @property
    def report_path(self) -> Path:
        """Where `skilltrain report` writes by default."""
        return self.path(REPORT_FILE)

    def is_run(self) -> bool:
        return self.root.is_dir() and any(self.path(m).exists() for m in RUN_MARKERS)

    @cached_property
    def summary(self) -> dict | None:
        """summary.json: written once, when the run ends."""
        return read_json(self.path(SUMMARY_FILE), summary_shape())

    @cached_property
    def state(self) -> dict | None:
        """state.json: the last checkpoint."""
        return read_json(self.path(STATE_FILE), state_shape())

    @cached_property
    def events(self) -> list[dict]:
        return read_events(self.path(EVENTS_FILE))

    @cached_property
    def config_text(self) -> str | None:
        return read_text(self.path(CONFIG_FILE))

    @cached_property
    def steps(self) -> list[dict]:
        """The step rows as the run wrote them: the checkpoint's history or, before the first
        checkpoint, the `step_end` events (the same rows, in their event envelope)."""
        if self.state is not None:
            return list(self.state.get("history") or [])
        return [{k: v for k, v in e.items() if k not in ("time", "event")}
                for e in self.events if e.get("event") == "step_end"]

    def skill(self, version: int) -> str | None:
        """One skill version's text (a package's: its SKILL.md)."""
        text = read_text(self.path(skill_file(version)))
        return text if text is not None else read_text(self.path(skill_dir(version)) / MAIN_FILE)

    def skill_files(self, version: int) -> dict[str, str] | None:
        """A package version's text files by path; None for a single-file version."""
        folder = self.path(skill_dir(version))
        if not folder.is_dir():
            return None
        try:
            return read_folder(folder)[0]
        except SkillError:  # a link someone put there: not what skilltrain wrote
            return None

    def best_skill(self) -> str | None:
        """The skill to ship, as last written (a package's: its SKILL.md)."""
        path = self.best_skill_path
        return read_text(path / MAIN_FILE if path.is_dir() else path)

    def step_file(self, step_id: str, name: str) -> dict | None:
        """One of a step's JSON files (`store.SELECTION_FILE`, `GATE_FILE`, ...)."""
        return read_json(self.path(step_file(step_id, name)), step_file_shape(name))
