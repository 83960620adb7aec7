"""`skilltrain sleep harvest`: every session on disk read, the ones not to learn from dropped
(with the reason counted), the rest written as redacted digests (digest.py).

Where sessions are looked for defaults to each CLI's own home, honouring the variables that
move it (CLAUDE_CONFIG_DIR, CODEX_HOME), since one home layout does not fit everyone; every
folder can be named instead, and a folder or file named on purpose must exist.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from skilltrain.sleep import digest as digests
from skilltrain.sleep.transcripts import (
    Session,
    TranscriptError,
    jsonl_files,
    read_claude,
    read_codex,
    read_generic,
)


def default_claude_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("CLAUDE_CONFIG_DIR")
    return (Path(base) if base else Path.home() / ".claude") / "projects"


def default_codex_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("CODEX_HOME")
    return (Path(base) if base else Path.home() / ".codex") / "sessions"


def default_out() -> Path:
    return Path.home() / ".skilltrain" / "sleep" / "digests"


@dataclass
class Harvest:
    """What one harvest did, for the command's summary line."""

    read: Counter[str] = field(default_factory=Counter)  # by source
    dropped: Counter[str] = field(default_factory=Counter)  # by reason
    written: Counter[str] = field(default_factory=Counter)  # new / updated / unchanged
    redacted: int = 0
    missing: list[str] = field(default_factory=list)  # default folders not found

    def summary(self, out: Path) -> str:
        def parts(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if v) or "none"
        return (f"read {sum(self.read.values())} sessions ({parts(self.read)}); dropped "
                f"{sum(self.dropped.values())} ({parts(self.dropped)}); wrote "
                f"{self.written['new'] + self.written['updated']} digests ({parts(self.written)})"
                f" to {out}; redacted {self.redacted} secrets")


def _sessions(claude_dir: Path | None, codex_dir: Path | None, generic: Sequence[Path],
              result: Harvest, explicit: set[str]) -> list[Session]:
    """Every session found. Raises TranscriptError for a path named on purpose that is not
    there, or a generic file that is not in the format."""
    found: list[Session] = []
    for name, root, reader in (("claude-dir", claude_dir, read_claude),
                               ("codex-dir", codex_dir, read_codex)):
        if root is None:
            continue
        if not root.is_dir():
            if name in explicit:
                raise TranscriptError(f"--{name} {root}: no such folder")
            result.missing.append(str(root))
            continue
        found += [reader(path) for path in jsonl_files(root)]
    for path in generic:
        if not path.is_file():
            raise TranscriptError(f"--generic {path}: no such file")
        found += read_generic(path)
    return found


def harvest(out: Path, *, claude_dir: Path | None = None, codex_dir: Path | None = None,
            generic: Sequence[Path] = (), budget: digests.Budget = digests.Budget(),
            environ: Mapping[str, str] | None = None,
            explicit: Sequence[str] = ()) -> Harvest:
    """Read, filter and digest every session; `claude_dir` / `codex_dir` default to the CLIs'
    homes. `explicit` names the folders the user gave (those must exist). Every generic file
    is checked before any digest is written, so bad input writes nothing."""
    env = os.environ if environ is None else environ
    result = Harvest()
    sessions = _sessions(claude_dir or default_claude_dir(env),
                         codex_dir or default_codex_dir(env), generic, result, set(explicit))
    records = []
    for session in sessions:
        result.read[session.source] += 1
        if session.dropped:
            result.dropped[session.dropped] += 1
            continue
        record, redacted = digests.digest(session, budget)
        result.redacted += redacted
        records.append(record)
    for record in records:
        result.written[digests.write(out, record)] += 1
    return result
