"""Writing files: atomically (a reader sees the old file or the whole new one, never half of
it), and a skill package's files into a folder (write_tree)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def atomic_write(path: Path, text: str, *, temp_suffix: str = ".tmp") -> None:
    """Write to a temporary sibling, fsync, then rename over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=temp_suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Write relative paths (already checked to stay inside a package) under `root`, text as
    UTF-8 and bytes as they are; a text file starting with `#!` is made executable, so an agent
    or a package's tests can run `./scripts/x.sh` as the skill's author would."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
            if content.startswith("#!"):
                path.chmod(0o755)
