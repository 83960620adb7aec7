"""The parent's side of the server child process: launch it by path, read it, stop its group.

Kept apart from `LocalServer` so that the operating-system details (process groups, signals,
pipes, the by-path bootstrap) sit in one place and the class reads as a lifecycle.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from . import child
from .child import READY_PREFIX, ServerConfig

# The child loads `child.py` by path instead of importing it from the package: see that module's
# docstring. Whatever the child needs must therefore live in `child.py` or the standard library.
_BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_skilltrain_local_server', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod.main(sys.argv[2:])\n"
)


def spawn(config: ServerConfig) -> subprocess.Popen[bytes]:
    """Start the child for `config` in its own session, tied to this process (parent pid, stdin
    pipe), with its stdout and stderr merged into one pipe for `drain`."""
    script = str(Path(child.__file__).resolve())
    cmd = [sys.executable, "-c", _BOOTSTRAP, script, *config.to_args()]
    cmd += ["--parent-pid", str(os.getpid()), "--watch-stdin"]
    return subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        close_fds=True,
    )


def drain(
    stream: IO[bytes],
    tail: collections.deque[str],
    ready_info: dict[str, Any],
    ready: threading.Event,
) -> None:
    """Read the child's output until EOF: keep a bounded tail for error messages (never block
    the child on a full pipe) and pick out the readiness line."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.startswith(READY_PREFIX):
            with contextlib.suppress(ValueError):
                ready_info.update(json.loads(line[len(READY_PREFIX) :]))
                ready.set()
            continue
        tail.append(line)
    stream.close()


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a server child and its process group: EOF on stdin, SIGTERM, then SIGKILL."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is not None:
        return
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a whole process group; one that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def http_ok(url: str) -> bool:
    """True when `url` answers 200: the readiness probe, so every failure just means not yet."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def get_json(url: str) -> dict[str, Any]:
    """The JSON object at `url`, or {} when it answers another JSON value (never a crash on
    a surprising but well-formed reply; network and parse errors are the caller's to catch)."""
    with urllib.request.urlopen(url, timeout=5.0) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    return data if isinstance(data, dict) else {}
