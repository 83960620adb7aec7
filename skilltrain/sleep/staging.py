"""Staging a trained skill for the user, and adopting it over their own skill (with an undo).

Why staged, not written: a nightly run is unattended, so its result waits in
`~/.skilltrain/sleep/staged/<name>-<time>/` until the user looks: `skill/` (the best skill: a
file under the user's file name, or a package folder), `skill.diff` (against the user's skill
at staging time), `evidence.json` (val/test before and after, accepted steps, the run folder,
and the hash of the user's skill then). Adopting checks that hash first: a skill the user
edited since staging is never overwritten by a result trained from the old one.
Adopting copies the user's skill to `<path>.bak-<time>` beside it and records that in the
staged folder's `adopted.json`, which `--undo` reads back.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from skilltrain.files import atomic_write


class StageError(ValueError):
    """Bad input to stage/adopt/undo: one line naming the path and what is wrong."""


def default_root() -> Path:
    return Path.home() / ".skilltrain" / "sleep" / "staged"


def _files(path: Path) -> dict[str, str]:
    """A skill as {relative name: text}: one file, or every file of a package folder."""
    if path.is_file():
        return {path.name: path.read_text(encoding="utf-8", errors="replace")}
    return {str(p.relative_to(path)): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(path.rglob("*")) if p.is_file()}


def skill_hash(path: Path) -> str:
    """sha256 over a skill's relative names and contents (a file's own name excluded)."""
    h = hashlib.sha256()
    files = _files(path)
    for name in sorted(files):
        h.update(b"" if path.is_file() else name.encode() + b"\0")
        h.update(files[name].encode() + b"\0")
    return h.hexdigest()


def diff(old: Path, new: Path) -> str:
    a, b = _files(old), _files(new)
    if old.is_file():  # compare the one file whatever the run named it
        a, b = {"SKILL": next(iter(a.values()))}, {"SKILL": next(iter(b.values()), "")}
    out: list[str] = []
    for name in sorted(set(a) | set(b)):
        out += difflib.unified_diff(a.get(name, "").splitlines(True),
                                    b.get(name, "").splitlines(True),
                                    f"yours/{name}", f"staged/{name}")
    return "".join(out)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _fresh(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`... when a run in the same second took it."""
    n, candidate = 1, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def stage(user_skill: Path, best: Path, evidence: dict[str, Any],
          root: Path | None = None) -> Path:
    """Write the staged folder; returns it. Built under a temporary name and renamed, so a
    half-written stage never looks like a stage."""
    user_skill = user_skill.resolve()
    base = root or default_root()
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = _fresh(base / f"{user_skill.stem if user_skill.is_file() else user_skill.name}"
                          f"-{_stamp()}")
    work = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    inner = work / "skill" / user_skill.name if user_skill.is_file() else work / "skill"
    inner.parent.mkdir(exist_ok=True)
    _copy(best, inner)
    record = {**evidence, "skill_path": str(user_skill), "skill_hash": skill_hash(user_skill),
              "staged_hash": skill_hash(inner), "staged_at": _stamp()}
    atomic_write(work / "skill.diff", diff(user_skill, inner))
    atomic_write(work / "evidence.json", json.dumps(record, indent=1) + "\n")
    work.rename(final)
    return final


def _evidence(staged: Path) -> dict[str, Any]:
    try:
        record = json.loads((staged / "evidence.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise StageError(f"{staged}: not a staged skill (no readable evidence.json)") from None
    if not isinstance(record, dict) or not isinstance(record.get("skill_path"), str):
        raise StageError(f"{staged}/evidence.json: expected 'skill_path' and 'skill_hash'")
    return record


def latest(root: Path | None = None, adopted: bool = False) -> Path:
    """The newest staged folder (with `adopted`, the newest one adopted)."""
    base = root or default_root()
    marker = "adopted.json" if adopted else "evidence.json"
    found = [p for p in base.glob("*") if (p / marker).is_file()] if base.is_dir() else []
    if not found:
        what = "adopted skill to undo" if adopted else "staged skill"
        raise StageError(f"{base}: no {what}")
    return max(found, key=lambda p: (p / marker).stat().st_mtime_ns)


def _staged_skill(staged: Path, target: Path) -> Path:
    return staged / "skill" / target.name if target.is_file() else staged / "skill"


def _replace(target: Path, source: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
        shutil.copytree(source, target)
    else:
        atomic_write(target, source.read_text(encoding="utf-8"))


def adopt(staged: Path) -> tuple[Path, Path]:
    """Write the staged skill over the user's; returns (skill path, backup path)."""
    record = _evidence(staged)
    target = Path(record["skill_path"])
    if not target.exists():
        raise StageError(f"{target}: the skill this was trained from is gone")
    if skill_hash(target) != record.get("skill_hash"):
        raise StageError(f"{target} changed since it was staged in {staged}; "
                         "not overwritten (train again on the new version)")
    source = _staged_skill(staged, target)
    backup = _fresh(target.with_name(f"{target.name}.bak-{_stamp()}"))
    _copy(target, backup)
    _replace(target, source)
    atomic_write(staged / "adopted.json", json.dumps(
        {"skill_path": str(target), "backup": str(backup), "adopted_hash": skill_hash(target),
         "adopted_at": _stamp()}, indent=1) + "\n")
    return target, backup


def undo(staged: Path) -> tuple[Path, Path]:
    """Restore the backup the adoption of `staged` made; returns (skill path, backup)."""
    try:
        record = json.loads((staged / "adopted.json").read_text(encoding="utf-8"))
        target, backup = Path(record["skill_path"]), Path(record["backup"])
    except (OSError, ValueError, KeyError, TypeError):
        raise StageError(f"{staged}: never adopted (no readable adopted.json)") from None
    if not backup.exists():
        raise StageError(f"{backup}: the backup is gone; nothing restored")
    if target.exists() and skill_hash(target) != record.get("adopted_hash"):
        raise StageError(f"{target} changed since it was adopted; not overwritten "
                         f"(the backup is {backup})")
    if target.is_dir() or backup.is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(backup, target)
    else:
        atomic_write(target, backup.read_text(encoding="utf-8"))
    (staged / "adopted.json").rename(staged / f"undone-{_stamp()}.json")
    return target, backup
