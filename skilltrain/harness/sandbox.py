"""A sandbox for model-written code: a child process in a fresh workspace, with limits, behind
a kernel-enforced boundary where the kernel lends one. `RunResult.isolation` records the mode.

Always, in every mode: a fresh workspace (`tempfile.mkdtemp`, the child's cwd, HOME and TMPDIR);
an environment without the caller's secrets (PATH, HOME, TMPDIR, LANG and names listed on
purpose, never a copy of `os.environ`); CPU, memory and file-size rlimits; a wall-clock timeout
after which the whole process tree is killed (found through /proc parent links under a
subreaping launcher, so `setsid` does not hide a process), bounded to about a second; and no
process left behind after a clean exit either.

`run_python`, mode **"namespaces"** (Linux with unprivileged user namespaces; chosen by default
when they work, see isolation.py for the design): the kernel refuses every write outside the
workspace (all mounts read-only; /tmp and /dev/shm private tmpfs), whatever API makes it; the code
sees only its own processes (a pid namespace with a fresh /proc, so the caller's
/proc/<pid>/environ is out of reach) and dies with them all when it exits or times out; it has no
network unless `allow_network`; it runs as uid 1000 without capabilities (outside: the caller's
uid, or `nobody` when the caller is root), the caller's home (and /run, unless networked) hidden;
`execve` is refused by seccomp unless `allow_subprocess`. Not isolated: reads of files the
sandbox uid may read elsewhere (an ordinary caller's own files outside its home), unix sockets
outside /run, CPU time, memory and process count beyond the rlimits (no cgroups), side channels.

`run_python`, mode **"guard"** (the fallback where namespaces are unavailable): the same limits,
environment and tree kill, plus the in-process guard (guard.py: an audit hook and wrappers that
refuse writes outside the workspace, other processes' /proc entries, spawning, network and
outside signals; seccomp refuses execve). A fence against mistakes, not a wall: code calling
libc through ctypes passes it. As root it runs as `nobody` when the interpreter is reachable so.

`Sandbox.run`, mode **"none"**: external agent CLIs need the network and their own configuration,
so they get only the workspace, the environment, the limits and the tree kill.
For hostile code where namespaces are unavailable, run the whole training run in a container.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from skilltrain.harness import guard, isolation
from skilltrain.harness.isolation import Launch

# The child loads guard.py or isolation.py by path and calls its `main` (importing the
# skilltrain package would slow every code run); both import only the standard library.
_BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_skilltrain_child', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod.main(sys.argv[2:])\n"
)
_GUARD = str(Path(guard.__file__).resolve())
_LAUNCHER = str(Path(isolation.__file__).resolve())
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_MB = 1024 * 1024


class SandboxError(RuntimeError):
    """The sandbox itself failed (the child could not start); an infrastructure failure."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run. `None` turns a limit off (external agent CLIs such as Node
    programs reserve far more address space than they use, so they need `memory_mb=None`)."""

    timeout_s: float = 30.0
    cpu_s: int | None = 20
    memory_mb: int | None = 1024
    file_mb: int | None = 64
    output_bytes: int = 64_000  # kept per stream (head and tail); the middle is dropped
    allow_subprocess: bool = False  # Python runs only: may the code start other programs?
    allow_network: bool = False  # Python runs only


@dataclass(frozen=True)
class RunResult:
    """What one run did. `limit` names the limit that stopped it, if one did."""

    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool = False
    limit: str | None = None
    isolation: str = "none"  # "namespaces", "guard", "none" (or "unknown"): see the module doc

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def render(self, max_chars: int = 4000) -> str:
        """The observation a model reads: exit status, then the output, cut in the middle."""
        parts = []
        if self.timed_out:
            parts.append(f"[killed: wall-clock timeout after {self.wall_s:.1f} s]")
        elif self.limit:
            parts.append(f"[stopped by the {self.limit} limit]")
        if self.returncode not in (0, None):
            parts.append(f"[exit code {self.returncode}]")
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.stderr:
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        if not (self.stdout or self.stderr):
            parts.append("[no output]")
        return clip_middle("\n".join(parts), max_chars)


def clip_middle(text: str, limit: int) -> str:
    """Keep the head and tail of a long text: errors are usually at the end, context at the
    start."""
    if limit <= 0 or len(text) <= limit:
        return text
    keep = max(limit - 40, 2)
    head, tail = keep * 2 // 3, keep - keep * 2 // 3
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[-tail:]}"


def safe_env(home: str | os.PathLike[str], *, passthrough: Iterable[str] = (),
             extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A fresh environment: PATH, HOME, TMPDIR and LANG, plus the caller's variables named in
    `passthrough` and the given `extra`. Nothing else of the caller's environment leaks in, so
    API keys and tokens stay out unless named on purpose."""
    home = os.fspath(home)
    env = {
        "PATH": os.environ.get("PATH", _DEFAULT_PATH),
        "HOME": home,
        "TMPDIR": os.path.join(home, ".tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
    }
    for name in passthrough:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def _rlimits(limits: Limits) -> tuple[tuple[str, int, int], ...]:
    """What the launcher sets on itself before it starts the command (every descendant inherits
    them). Set there rather than in a preexec_fn, which is unsafe in a threaded parent."""
    out = [("RLIMIT_CORE", 0, 0)]  # a killed child must not litter core files
    if limits.cpu_s is not None:  # soft: SIGXCPU; hard (a second later): SIGKILL
        out.append(("RLIMIT_CPU", limits.cpu_s, limits.cpu_s + 1))
    for name, mb in (("RLIMIT_AS", limits.memory_mb), ("RLIMIT_FSIZE", limits.file_mb)):
        if mb is not None:
            out.append((name, mb * _MB, mb * _MB))
    return tuple(out)


class _Capture(threading.Thread):
    """Drains one pipe, keeping the first and last `limit // 2` bytes: a runaway print loop can
    neither fill the parent's memory nor block the child on a full pipe."""

    def __init__(self, stream, limit: int):  # noqa: ANN001 - a binary pipe
        super().__init__(daemon=True)
        self.stream = stream
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for chunk in iter(lambda: self.stream.read1(65536), b""):
                room = self.half - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail += chunk
                    if len(self.tail) > self.half:
                        self.dropped += len(self.tail) - self.half
                        del self.tail[: len(self.tail) - self.half]
        with contextlib.suppress(OSError):
            self.stream.close()

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes of output dropped ...]\n{tail}"
        return head + tail


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _which_limit(returncode: int | None, stderr: str, limits: Limits) -> str | None:
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and limits.cpu_s):
        return "cpu" if returncode == -signal.SIGXCPU else "cpu or kernel"
    if returncode == -signal.SIGXFSZ or "File too large" in stderr:
        return "file size"
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory"
    return None


def _read_status(fd: int) -> dict[str, str]:
    """The launcher's report: "isolation MODE [why]", "exit CODE" (absent if it was killed)."""
    data = bytearray()
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 65536):
            data += chunk
    os.close(fd)
    lines = (line.partition(" ") for line in data.decode(errors="replace").splitlines())
    return {key: rest for key, _, rest in lines}


def _executable(argv0: str, cwd: str, env: Mapping[str, str]) -> str | None:
    if os.sep in argv0:
        path = os.path.join(cwd, argv0)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(argv0, path=env.get("PATH", _DEFAULT_PATH))


def run_process(argv: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str],
                limits: Limits, stdin: bytes | None = None, launch: Launch | None = None
                ) -> RunResult:
    """Run one command under `limits` (and the isolation `launch` asks for; by default none)
    and return what it did; never leaves a process behind. Raises SandboxError when the
    command cannot be started at all, or when `launch` demands namespaces that do not work."""
    return _run(argv, cwd=cwd, env=env, limits=limits, stdin=stdin, launch=launch)[0]


def _run(argv: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str],
         limits: Limits, stdin: bytes | None, launch: Launch | None) -> tuple[RunResult, str]:
    started = time.monotonic()
    cwd = os.fspath(cwd)
    if not argv or _executable(argv[0], cwd, env) is None:
        name = argv[0] if argv else ""
        raise SandboxError(f"cannot start {name!r}: not found or not executable")
    spec = dataclasses.replace(launch or Launch(), argv=tuple(argv), rlimits=_rlimits(limits))
    status_r, status_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOTSTRAP, _LAUNCHER, "launch", str(status_w),
             spec.to_json()], cwd=cwd, env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            close_fds=True, pass_fds=(status_w,))
    except OSError as exc:
        os.close(status_r)
        raise SandboxError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    finally:
        os.close(status_w)
    readers = [_Capture(proc.stdout, limits.output_bytes),
               _Capture(proc.stderr, limits.output_bytes)]
    for reader in readers:
        reader.start()
    if stdin is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
    timed_out = False
    try:
        proc.wait(timeout=max(limits.timeout_s - (time.monotonic() - started), 0.001))
    except subprocess.TimeoutExpired:
        timed_out = True
        isolation.kill_tree(proc.pid, include_root=True)
        proc.wait()
    except BaseException:  # e.g. KeyboardInterrupt: never leave the tree running
        isolation.kill_tree(proc.pid, include_root=True)
        proc.wait()
        raise
    _kill_group(proc.pid)  # the launcher killed its tree; this catches what left it early
    deadline = time.monotonic() + 1.0  # the pipes close when the last holder dies
    for reader in readers:
        reader.join(timeout=max(deadline - time.monotonic(), 0.01))
    status = _read_status(status_r)
    mode, _, why = status.get("isolation", "unknown").partition(" ")  # unknown: it died first
    if mode == "failed":
        raise SandboxError(f"namespaces are not available here: {why}")
    stdout, stderr = readers[0].text(), readers[1].text()
    code = int(status["exit"]) if "exit" in status else proc.returncode
    limit = "timeout" if timed_out else _which_limit(code, stderr, limits)
    return RunResult(returncode=code, stdout=stdout, stderr=stderr,
                     wall_s=round(time.monotonic() - started, 3), timed_out=timed_out,
                     limit=limit, isolation=mode), why


def interpreter_paths(python: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The folders a Python must read to start: its installation, and, when it is this very
    interpreter, its prefixes and the entries of `sys.path` (site-packages, editable installs)."""
    real = os.path.realpath(python)
    wanted = {os.path.dirname(os.path.dirname(real)), *extra}
    if os.path.realpath(sys.executable) == real:
        wanted |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
        wanted |= {p for p in sys.path if p and os.path.isdir(p)}
    return tuple(sorted({os.path.realpath(p) for p in wanted if os.path.isdir(p)}))


def _hand_over(root: Path, uid: int) -> None:
    """Give the workspace to the sandbox's uid (root callers only): the files the harness wrote
    as root must be writable by the code. Symlinks are not followed and a file with several
    links is skipped (it may be a link to a file outside)."""
    me = os.geteuid()
    for folder, _dirs, files in os.walk(root):
        for name in (*files, None):  # each folder is `folder` once, in its own turn
            path = folder if name is None else os.path.join(folder, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if st.st_uid == me and (stat.S_ISDIR(st.st_mode) or st.st_nlink == 1):
                    os.lchown(path, uid, uid)


class Sandbox:
    """A fresh workspace folder and the limits for code run in it.

        with Sandbox(Limits(timeout_s=10)) as box:
            result = box.run_python("print(2 + 2)")

    Every `run_python` call is a new process: files persist in the workspace, variables do not.
    `isolation` is "auto" (namespaces where they work, else the guard), "namespaces" (raise
    SandboxError rather than fall back) or "guard"; after the first `run_python` an "auto"
    sandbox holds the mode it got, and `fallback_reason` says why namespaces were not used.
    """

    def __init__(self, limits: Limits | None = None, *, prefix: str = "skilltrain-ws-",
                 keep: bool = False, python: str | None = None, isolation: str = "auto"):
        if isolation not in ("auto", "namespaces", "guard"):
            raise ValueError(f"isolation {isolation!r}: expected auto, namespaces or guard")
        self.limits = limits or Limits()
        self.workspace = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
        (self.workspace / ".tmp").mkdir()
        self.keep = keep
        self.python = python or sys.executable
        self.isolation = isolation
        self.fallback_reason: str | None = None

    def env(self, passthrough: Iterable[str] = (), extra: Mapping[str, str] | None = None
            ) -> dict[str, str]:
        return safe_env(self.workspace, passthrough=passthrough, extra=extra)

    def _launch(self) -> Launch:
        needs = interpreter_paths(self.python, extra=(os.path.dirname(_GUARD),))
        hide = () if self.limits.allow_network else ("/run",)  # unix sockets: a network
        expose, mask = isolation.plan_views(needs, hide) if self.isolation != "guard" else ((), ())
        return Launch(mode=self.isolation, workspace=str(self.workspace),
                      network=self.limits.allow_network,
                      uid=isolation.NOBODY if os.geteuid() == 0 else None,
                      tmp_mb=max(self.limits.file_mb or 256, 16), needs=needs, expose=expose,
                      mask=mask)

    def run_python(self, code: str) -> RunResult:
        """Run Python source in the workspace under the limits, the isolation and the guard."""
        argv = [self.python, "-I", "-c", _BOOTSTRAP, _GUARD, str(self.workspace),
                "1" if self.limits.allow_subprocess else "0",
                "1" if self.limits.allow_network else "0"]
        launch = self._launch()
        if launch.uid is not None:
            _hand_over(self.workspace, launch.uid)
        result, why = _run(argv, cwd=self.workspace, env=self.env(), limits=self.limits,
                           stdin=code.encode("utf-8"), launch=launch)
        if self.isolation == "auto" and result.isolation in ("namespaces", "guard"):
            self.isolation = result.isolation  # do not retry what failed on every call
            self.fallback_reason = why or None
        return result

    def run(self, argv: Sequence[str], *, passthrough: Iterable[str] = (),
            extra_env: Mapping[str, str] | None = None, stdin: bytes | None = None
            ) -> RunResult:
        """Run any command in the workspace under the limits, isolation "none" (see the module
        docstring: agent CLIs need the network and their own configuration)."""
        return run_process(argv, cwd=self.workspace, env=self.env(passthrough, extra_env),
                           limits=self.limits, stdin=stdin)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.workspace, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
