"""Finding processes from the outside, for the tests that check nothing outlives a run.

A pid printed inside the sandbox's pid namespace means nothing out here, so processes are found
by what they were started with (a marker in their command line), and a zombie counts as gone
(a container's init may not reap).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def with_marker(marker: str) -> list[int]:
    """Live processes (other than this one) whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_marker_gone(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while with_marker(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
