"""The in-process guard around model-written Python: an audit hook (PEP 578), wrappers for the
few writing calls Python does not audit, and a seccomp filter that refuses `execve`.

Why it exists next to the namespaces (isolation.py): it is the only fence when the kernel lends
no namespaces, and inside them it turns the common mistake (a write outside the workspace, a
`subprocess.run`) into a clear `PermissionError: sandbox: ...` instead of a bare EROFS.

What it refuses, when the limits say so: opening for writing, creating (files, folders, FIFOs,
device nodes, SQLite databases), removing, renaming, linking, truncating or changing the metadata
of a path that resolves outside the workspace, symlinks followed, `dir_fd` and file descriptors
resolved through /proc/self/fd; reading another process's /proc entries (the caller's environment
holds API keys); starting programs (`subprocess`, `os.exec*`, `os.fork`, `_posixsubprocess`);
network connections; signals outside the code's own process group.

What it cannot refuse: code that calls libc directly (ctypes) or races a check. Only `execve` is
refused by the kernel here (seccomp, on x86-64 and arm64): that holds against ctypes too. This
file runs in the child by path (`python -I`), so it imports only the standard library.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys

_DENY_SPAWN = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                         "os.spawn", "os.fork", "os.forkpty", "pty.spawn"})
_DENY_NET = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
# event -> (path position, its dir_fd position or None) for each path argument that is written
_PATH_EVENTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),),
    "os.rename": ((0, 2), (1, 3)), "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),),
    "os.truncate": ((0, None),), "os.chmod": ((0, 2),), "os.chown": ((0, 3),),
    "os.utime": ((0, 3),), "os.chflags": ((0, None),), "os.lchflags": ((0, None),),
    "os.setxattr": ((0, None),), "os.removexattr": ((0, None),),
    "shutil.rmtree": ((0, 1),), "shutil.copyfile": ((1, None),),
    "shutil.move": ((0, None), (1, None)), "shutil.copytree": ((1, None),),
    "shutil.unpack_archive": ((1, None),), "shutil.make_archive": ((0, None),),
}
_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
_PROC_PID = re.compile(r"/proc/(\d+)(?:/task/\d+)?/(.*)")
_PROC_PUBLIC = frozenset({"stat", "status", "comm", ""})  # what `ps` reads; not environ or mem


def _make_hook(root: str, allow_subprocess: bool, allow_network: bool):  # noqa: ANN202
    """The audit hook. Every path is resolved with realpath (so a symlink inside the workspace
    that points outside opens no way out); descriptors through /proc/self/fd."""
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    prefix = root.rstrip(os.sep) + os.sep
    proc_dev = os.stat("/proc/self").st_dev

    def on_proc(path: object) -> bool:  # one stat, not a realpath, for each file imported
        try:
            return os.stat(path).st_dev == proc_dev  # type: ignore[arg-type]
        except (OSError, ValueError):
            return False

    def refuse(what: str, path: object = None, code: int = errno.EACCES) -> None:
        shown = () if path is None else (os.fsdecode(path) if not isinstance(path, int)
                                          else str(path),)
        raise PermissionError(code, f"sandbox: {what}", *shown)

    def check(path: object, dir_fd: object, what: str) -> None:
        real = resolve(path, dir_fd)
        if real is None or real == root or real.startswith(prefix) or real in _DEVICES:
            return
        refuse(f"{what} outside the workspace is not allowed", path)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & write_flags):
                check(path, None, "writing")
            elif isinstance(path, (str, bytes, os.PathLike)) and on_proc(path):
                m = _PROC_PID.fullmatch(os.path.realpath(os.fsdecode(path)))
                if m and int(m.group(1)) != os.getpid() and m.group(2) not in _PROC_PUBLIC:
                    refuse("reading another process's /proc entries is not allowed", path)
        elif event in _PATH_EVENTS:
            for at, fd_at in _PATH_EVENTS[event]:
                if at < len(args):
                    dir_fd = args[fd_at] if fd_at is not None and fd_at < len(args) else None
                    check(args[at], dir_fd, f"{event}()")
        elif event == "sqlite3.connect":
            target = _sqlite_path(args[0])
            if target is not None:
                check(target, None, "a database")
        elif event in _DENY_SPAWN and not allow_subprocess:
            refuse("starting other programs is not allowed", code=errno.EPERM)
        elif event in _DENY_NET and not allow_network:
            refuse("network access is not allowed", code=errno.EPERM)
        elif event in ("os.kill", "os.killpg"):
            target = args[0]
            with contextlib.suppress(OSError):
                target = target if event == "os.killpg" else os.getpgid(target)
            if target != os.getpgrp():
                refuse("signals to processes outside the sandbox are not allowed",
                       code=errno.EPERM)

    return hook, check


def resolve(path: object, dir_fd: object) -> str | None:
    """The real path a call would touch; None for a descriptor that is no file (a pipe)."""
    if path is None:
        return None
    if isinstance(path, int):  # fchmod, fchown, futime, ftruncate, open(fd)
        try:
            name = os.readlink(f"/proc/self/fd/{path}")
        except OSError:
            return None
        return name.removesuffix(" (deleted)") if name.startswith(os.sep) else None
    name = os.fsdecode(path)  # type: ignore[arg-type]
    if not os.path.isabs(name) and isinstance(dir_fd, int) and dir_fd >= 0:  # -1: none given
        base = resolve(dir_fd, None)
        name = os.path.join(base if base is not None else "/", name)
    return os.path.realpath(name)


def _sqlite_path(database: object) -> str | None:
    """The file a `sqlite3.connect` opens; None for an in-memory database."""
    name = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else ""
    if name.startswith("file:"):
        name, _, query = name[5:].partition("?")
        if "mode=memory" in query or "mode=ro" in query:
            return None
        name = re.sub(r"^//[^/]*", "", name)
    return None if name in ("", ":memory:") else name


def _wrap_unaudited(check, allow_subprocess: bool) -> None:  # noqa: ANN001
    """Calls that raise no audit event (or none that carries the dir_fd) are wrapped in `os`
    and `posix` alike; ctypes still gets past, as the module docstring says."""
    import posix

    real_open, real_mkfifo, real_mknod = posix.open, posix.mkfifo, posix.mknod

    def open_(path, flags, mode=0o777, *, dir_fd=None):  # noqa: ANN001, ANN202
        if dir_fd is not None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC):
            check(path, dir_fd, "writing")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def mkfifo(path, mode=0o666, *, dir_fd=None):  # noqa: ANN001, ANN202
        check(path, dir_fd, "os.mkfifo()")
        return real_mkfifo(path, mode, dir_fd=dir_fd)

    def mknod(path, mode=0o600, device=0, *, dir_fd=None):  # noqa: ANN001, ANN202
        check(path, dir_fd, "os.mknod()")
        return real_mknod(path, mode, device, dir_fd=dir_fd)

    for module in (os, posix):
        module.open, module.mkfifo, module.mknod = open_, mkfifo, mknod
    with contextlib.suppress(ImportError):  # ATTACH DATABASE would open a file unchecked
        import _sqlite3

        real_connect = _sqlite3.connect

        def connect(*args: object, **kwargs: object):  # noqa: ANN202
            connection = real_connect(*args, **kwargs)
            with contextlib.suppress(AttributeError):  # Python 3.10 cannot set limits
                connection.setlimit(7, 0)  # SQLITE_LIMIT_ATTACHED
            return connection

        _sqlite3.connect = connect  # sqlite3.dbapi2 imports it from here
    if not allow_subprocess:
        import _posixsubprocess

        def fork_exec(*args: object, **kwargs: object) -> int:
            raise PermissionError(errno.EPERM, "sandbox: starting other programs is not allowed")

        _posixsubprocess.fork_exec = fork_exec


def deny_exec() -> bool:
    """Install a seccomp filter that fails execve/execveat with EPERM (and every call of a
    foreign ABI, which could reach them under another number). Returns False where the
    architecture is unknown or the kernel refuses; the hook is then the only fence."""
    import ctypes
    import platform

    numbers = {"x86_64": (0xC000003E, 59, 322), "aarch64": (0xC00000B7, 221, 281)}
    if platform.machine() not in numbers:
        return False
    arch, execve, execveat = numbers[platform.machine()]
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    deny, allow = 0x00050000 | errno.EPERM, 0x7FFF0000
    program = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, deny), (ld, 0, 0, 0),
               (jge, 3, 0, 0x40000000), (jeq, 2, 0, execve), (jeq, 1, 0, execveat),
               (ret, 0, 0, allow), (ret, 0, 0, deny)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    rows = (Filter * len(program))(*[Filter(*row) for row in program])
    prog = Program(len(program), rows)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: required for an unprivileged filter
        return False
    return libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0  # PR_SET_SECCOMP, MODE_FILTER


def main(argv: list[str]) -> None:
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
    if not allow_subprocess:
        deny_exec()
    hook, check = _make_hook(os.path.realpath(root), allow_subprocess, allow_network)
    _wrap_unaudited(check, allow_subprocess)
    sys.addaudithook(hook)
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
