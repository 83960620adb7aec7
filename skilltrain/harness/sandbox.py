"""A sandbox for model-written code: a child process in a fresh workspace, with limits.

What it does, and why each part is there:

- **A fresh workspace.** Each `Sandbox` owns a new `tempfile.mkdtemp` folder; the child runs with
  it as its working directory, HOME and TMPDIR, so ordinary file use stays inside it.
- **A wall-clock timeout that kills the whole process group.** The child starts in a new session
  (`start_new_session=True`), so it and everything it spawns share one process group; on timeout
  the group gets SIGKILL. The group is also killed after a normal exit, so no background process
  outlives a run.
- **CPU, memory and file-size limits** (`RLIMIT_CPU`, `RLIMIT_AS`, `RLIMIT_FSIZE`) set in the child
  between fork and exec. `RLIMIT_NPROC` is not used: Linux counts it per user across the whole
  machine (so a sensible value for one sandbox breaks a busy user's other work) and ignores it for
  root; spawning is refused by the guard below instead.
- **An environment without the caller's secrets.** The child gets a fresh environment (PATH, HOME,
  TMPDIR, LANG and names the caller lists explicitly), never a copy of `os.environ`.
- **No writes outside the workspace (Python only).** `run_python` starts the interpreter isolated
  (`-I`: no PYTHON* variables, no user site) with a small guard, `_guard_main` below, installed
  as an audit hook (PEP 578) before the model's code runs. The hook refuses opening a file for
  writing, creating, removing, renaming, linking, truncating or changing the metadata of a path
  that resolves (symlinks followed) outside the workspace; starting other programs; network
  connections; and signals to processes outside the sandbox's group.

What the guard does not guarantee: it is a fence against mistakes and careless code, not against
an adversary. Code can leave Python's audited paths (ctypes calls into libc, `os.open` with a
`dir_fd`, races between check and use); programs started when `allow_subprocess=True` are not
guarded at all; reads outside the workspace are allowed (the interpreter needs its library).
For hostile code, run the whole training run in a container or VM.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Only the standard library is imported above: the child loads this file by path to run
# `_guard_main` (importing the skilltrain package would slow every code run).
_BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_skilltrain_sandbox', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod._guard_main(sys.argv[2:])\n"
)
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


def _rlimits(limits: Limits) -> list[tuple[int, int]]:
    import resource

    out = []
    if limits.cpu_s is not None:  # soft: SIGXCPU; hard (a second later): SIGKILL
        out.append((resource.RLIMIT_CPU, limits.cpu_s, limits.cpu_s + 1))
    if limits.memory_mb is not None:
        out.append((resource.RLIMIT_AS, limits.memory_mb * _MB, limits.memory_mb * _MB))
    if limits.file_mb is not None:
        out.append((resource.RLIMIT_FSIZE, limits.file_mb * _MB, limits.file_mb * _MB))
    out.append((resource.RLIMIT_CORE, 0, 0))  # a killed child must not litter core files
    return out


def _limiter(limits: Limits):  # noqa: ANN202 - a preexec_fn
    """The function run in the child between fork and exec. It only calls setrlimit (no
    allocation-heavy Python), which keeps preexec_fn safe enough in a threaded parent."""
    import resource

    settings = _rlimits(limits)

    def apply() -> None:
        for which, soft, hard in settings:
            resource.setrlimit(which, (soft, hard))

    return apply


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


def run_process(argv: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str],
                limits: Limits, stdin: bytes | None = None) -> RunResult:
    """Run one command under `limits` and return what it did; never leaves a process behind
    in its group. Raises SandboxError when the command cannot be started at all."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv), cwd=os.fspath(cwd), env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, close_fds=True, preexec_fn=_limiter(limits),
        )
    except OSError as exc:
        raise SandboxError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
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
        proc.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        proc.wait()
    except BaseException:  # e.g. KeyboardInterrupt: never leave the group running
        _kill_group(proc.pid)
        proc.wait()
        raise
    _kill_group(proc.pid)  # stragglers: background children of a child that exited
    for reader in readers:
        reader.join(timeout=5.0)
    stdout, stderr = readers[0].text(), readers[1].text()
    code = proc.returncode
    limit = "timeout" if timed_out else _which_limit(code, stderr, limits)
    return RunResult(returncode=code, stdout=stdout, stderr=stderr,
                     wall_s=round(time.monotonic() - started, 3), timed_out=timed_out,
                     limit=limit)


class Sandbox:
    """A fresh workspace folder and the limits for code run in it.

        with Sandbox(Limits(timeout_s=10)) as box:
            result = box.run_python("print(2 + 2)")

    Every `run_python` call is a new process: files persist in the workspace, variables do not.
    """

    def __init__(self, limits: Limits | None = None, *, prefix: str = "skilltrain-ws-",
                 keep: bool = False, python: str | None = None):
        self.limits = limits or Limits()
        self.workspace = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
        (self.workspace / ".tmp").mkdir()
        self.keep = keep
        self.python = python or sys.executable

    def env(self, passthrough: Iterable[str] = (), extra: Mapping[str, str] | None = None
            ) -> dict[str, str]:
        return safe_env(self.workspace, passthrough=passthrough, extra=extra)

    def run_python(self, code: str) -> RunResult:
        """Run Python source in the workspace under the limits and the write guard."""
        argv = [self.python, "-I", "-c", _BOOTSTRAP, str(Path(__file__).resolve()),
                str(self.workspace), "1" if self.limits.allow_subprocess else "0",
                "1" if self.limits.allow_network else "0"]
        return run_process(argv, cwd=self.workspace, env=self.env(), limits=self.limits,
                           stdin=code.encode("utf-8"))

    def run(self, argv: Sequence[str], *, passthrough: Iterable[str] = (),
            extra_env: Mapping[str, str] | None = None, stdin: bytes | None = None
            ) -> RunResult:
        """Run any command in the workspace under the limits (no write guard: see module doc)."""
        return run_process(argv, cwd=self.workspace, env=self.env(passthrough, extra_env),
                           limits=self.limits, stdin=stdin)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.workspace, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the child side: the write guard ------------------------------------------------------------

_DENY_SPAWN = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                         "os.spawn", "os.fork", "os.forkpty", "pty.spawn"})
_DENY_NET = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
# event -> positions of the path arguments to check, and the position of their dir_fd (or None)
_PATH_EVENTS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "os.remove": ((0,), 1), "os.rmdir": ((0,), 1), "os.mkdir": ((0,), 2),
    "os.rename": ((0, 1), 2), "os.link": ((0, 1), 2), "os.symlink": ((1,), 2),
    "os.truncate": ((0,), None), "os.chmod": ((0,), 2), "os.chown": ((0,), 3),
    "os.utime": ((0,), 3), "os.chflags": ((0,), None), "os.lchflags": ((0,), None),
    "os.setxattr": ((0,), None), "os.removexattr": ((0,), None),
    "shutil.rmtree": ((0,), 1), "shutil.copyfile": ((1,), None), "shutil.move": ((0, 1), None),
}
_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})


def _make_hook(root: str, allow_subprocess: bool, allow_network: bool):  # noqa: ANN202
    """The audit hook. It resolves every path it checks with realpath, so a symlink inside the
    workspace that points outside does not open a way out."""
    import errno

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    prefix = root.rstrip(os.sep) + os.sep
    own_group = os.getpgrp()

    def resolve(path: object, dir_fd: object) -> str | None:
        if isinstance(path, int) or path is None:
            return None  # an already open file descriptor
        name = os.fsdecode(path)  # type: ignore[arg-type]
        if not os.path.isabs(name) and isinstance(dir_fd, int):
            with contextlib.suppress(OSError):
                name = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
        return os.path.realpath(name)

    def check(path: object, dir_fd: object, what: str) -> None:
        real = resolve(path, dir_fd)
        if real is None or real == root or real.startswith(prefix) or real in _DEVICES:
            return
        raise PermissionError(errno.EACCES, f"sandbox: {what} outside the workspace is not "
                              "allowed", os.fsdecode(path))  # type: ignore[arg-type]

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if writing:
                check(path, None, "writing")
        elif event in _PATH_EVENTS:
            positions, fd_at = _PATH_EVENTS[event]
            dir_fd = args[fd_at] if fd_at is not None and fd_at < len(args) else None
            for i in positions:
                if i < len(args):
                    check(args[i], dir_fd, f"{event}()")
        elif event in _DENY_SPAWN and not allow_subprocess:
            raise PermissionError(errno.EPERM, "sandbox: starting other programs is not allowed")
        elif event in _DENY_NET and not allow_network:
            raise PermissionError(errno.EPERM, "sandbox: network access is not allowed")
        elif event in ("os.kill", "os.killpg"):
            target = args[0]
            with contextlib.suppress(OSError):
                target = target if event == "os.killpg" else os.getpgid(target)
            if target != own_group:
                raise PermissionError(errno.EPERM, "sandbox: signals to processes outside the "
                                      "sandbox are not allowed")

    return hook


def _guard_main(argv: list[str]) -> None:
    """Child entry point: install the guard, then run the code read from stdin as __main__."""
    import linecache
    import traceback

    root, allow_subprocess, allow_network = argv[0], argv[1] == "1", argv[2] == "1"
    code = sys.stdin.read()
    sys.stdin.close()
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the code may call input(); it gets EOF
    sys.dont_write_bytecode = True  # -I ignores PYTHONDONTWRITEBYTECODE
    sys.path.insert(0, root)  # the code may import modules it wrote into the workspace
    sys.argv = ["main.py"]
    filename = "<cell>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    sys.addaudithook(_make_hook(os.path.realpath(root), allow_subprocess, allow_network))
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError:
        traceback.print_exc(limit=0)
        sys.exit(1)
    scope = {"__name__": "__main__", "__file__": filename, "__builtins__": __builtins__}
    try:
        exec(compiled, scope)  # noqa: S102 - running the model's code is this module's job
    except SystemExit:
        raise
    except BaseException as exc:  # show the model its own frames, not the guard's
        report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        report.stack = traceback.StackSummary.from_list(
            [f for f in report.stack if f.filename != __file__])
        sys.stderr.write("".join(report.format()))
        sys.exit(1)

