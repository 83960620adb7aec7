"""The process side of the sandbox: start a command inside Linux namespaces when the kernel
lends them, under a supervising launcher either way, and kill whatever it leaves behind.

Why namespaces: an audit hook runs inside the process it polices, so code that leaves Python's
audited paths (ctypes, `_posixsubprocess`, a `dir_fd`) leaves the hook behind. Only the kernel
sees every system call. User namespaces give that without root or a setuid helper (no bwrap):

- a **pid namespace**, whose init is ours: when init exits the kernel kills every process in the
  namespace, `setsid` or not, and a fresh `/proc` lists only the sandbox's processes, so the
  caller's `/proc/<pid>/environ` (which holds its API keys) does not exist inside;
- a **mount namespace** where every mount is remounted read-only, `/tmp` and `/dev/shm` are fresh
  small tmpfs, the caller's home folder (and /run, with its unix sockets, unless the network is
  allowed) is hidden, only the folders the interpreter needs bound back read-only, and the
  workspace alone is bound read-write: a write elsewhere fails (EROFS) whatever API makes it;
- a **network namespace** with only a downed loopback, unless the limits allow the network;
- a **second, nested user namespace** (uid 1000) entered after the mounts are set up: mount flags
  copied into a less privileged namespace are locked by the kernel, so the code cannot remount
  anything read-write, and being uid 1000 it has no capabilities after exec;
- when the caller is root, the outer uid of the sandbox is `nobody` (the workspace is handed to
  that uid first), so root's own 0600 files are unreadable too.

Three processes, because only a process outside a new user namespace may map another uid into
it, and because pid 1 ignores signals it has no handler for (the code must not be pid 1, or the
CPU and file-size limits would not stop it): (1) the **launcher** `run_process` starts stays
outside, is a child subreaper (orphans reparent to it and stay findable), writes the leader's
uid maps, falls back when any namespace step fails, reports the mode and exit status on a status
pipe and kills what is left; (2) the **leader** unshares the namespaces and waits; (3) **init**,
pid 1 inside, builds the mounts, enters the nested namespace, forks the code, reaps, reports.

Without namespaces (CI machines often block them) the launcher still supervises: the code runs
as its child in its own process group, its whole subtree is killed at the end, and the Python
guard (guard.py) is the only fence. This file runs in the child by path (`python -I`), so it
imports only the standard library at module level.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
MS_STRICTATIME = 1 << 24
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 4, 36, 38
NOBODY = 65534  # the outer uid/gid of the sandbox when the caller is root
INNER_ID = 1000  # the uid/gid the code sees inside the nested user namespace
_LOCKED = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
           "nodiratime": MS_NODIRATIME, "strictatime": MS_STRICTATIME}


@dataclass(frozen=True)
class Launch:
    """How the launcher should start one command. `mode`: "auto" (namespaces, else guard),
    "namespaces" (fail rather than fall back), "guard" (no namespaces), "none" (supervision
    only, for external programs that need the caller's network and files)."""

    mode: str = "none"
    workspace: str = ""
    network: bool = True
    uid: int | None = None  # outer uid to run as (root callers only); None: the caller's
    tmp_mb: int = 256
    needs: tuple[str, ...] = ()  # what the command must read (the Python): decides a uid drop
    expose: tuple[str, ...] = ()  # folders under a mask that must stay readable (the Python)
    mask: tuple[str, ...] = ()  # folders hidden behind an empty read-only tmpfs
    argv: tuple[str, ...] = ()
    rlimits: tuple[tuple[str, int, int], ...] = ()  # (RLIMIT_ name, soft, hard)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


# -- shared by the caller and the launcher: find and kill a process tree -----------------------

def descendants(root: int) -> list[int]:
    """Every live process below `root`, found through parent links in /proc (not the process
    group, which `setsid` leaves)."""
    kids: dict[int, list[int]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, IndexError), open(f"/proc/{name}/stat", "rb") as f:
            state, ppid = f.read().rsplit(b")", 1)[1].split()[:2]
            if state not in (b"Z", b"X"):  # a zombie is dead already; its parent reaps it
                kids.setdefault(int(ppid), []).append(int(name))
    out, todo = [], [root]
    while todo:
        found = kids.get(todo.pop(), [])
        out += found
        todo += found
    return out


def kill_tree(root: int, *, include_root: bool, within_s: float = 1.0) -> None:
    """SIGKILL everything below `root` until nothing is left (a process may fork while the
    scan runs, so it repeats), then `root` itself: killing the root first would reparent the
    rest out of reach. Bounded by `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        pids = descendants(root)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.002)
    if include_root:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(root, signal.SIGKILL)


def _ancestors(path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b', '/a/b/c'], symlinks resolved."""
    parts = os.path.realpath(path).split(os.sep)[1:]
    return [os.sep + os.sep.join(parts[:i]) for i in range(1, len(parts) + 1)]


def reachable_by_others(paths: Iterable[str]) -> bool:
    """True when an unrelated uid could reach every path: each folder on the way searchable by
    others, the path itself readable. A dropped uid must still find the interpreter."""
    try:
        return all(os.stat(a).st_mode & (stat.S_IXOTH if os.path.isdir(a) else stat.S_IROTH)
                   for path in paths for a in _ancestors(path))
    except OSError:
        return False


def plan_views(wanted: Sequence[str], hide: Sequence[str] = ()
               ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(expose, mask): the folders to hide behind an empty tmpfs (`hide`, the caller's home,
    where keys and tokens live, and any folder that others cannot search on the way to a wanted
    one) and, under them, the wanted folders to bind back read-only."""
    home = os.path.realpath(os.path.expanduser("~"))
    masks = {os.path.realpath(p) for p in (home, *hide) if p != os.sep and os.path.isdir(p)}
    for path in wanted:  # the first folder on the way that others may not search
        closed = [a for a in _ancestors(path)[:-1] if not os.stat(a).st_mode & stat.S_IXOTH]
        masks.update(closed[:1])
    masks = {m for m in masks if not any(m != o and _under(m, o) for o in masks)}
    expose = {p for p in wanted if any(_under(p, m) for m in masks)}
    expose = {p for p in expose if not any(p != o and _under(p, o) for o in expose)}
    return tuple(sorted(expose)), tuple(sorted(masks))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


# -- the launcher ------------------------------------------------------------------------------

def main(argv: list[str]) -> None:
    """Launcher entry point: `launch <status fd> <Launch as JSON>`."""
    status = int(argv[1])
    spec = Launch(**{k: tuple(v) if isinstance(v, list) else v
                     for k, v in json.loads(argv[2]).items()})
    os.set_inheritable(status, False)
    import resource

    for name, soft, hard in spec.rlimits:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    mode, reason, child, events = spec.mode, "", None, None
    if mode in ("auto", "namespaces"):
        child, events, reason = _start_namespaced(spec, status)
        mode = "namespaces" if child is not None else mode
        if child is None and mode == "namespaces":
            _say(status, f"isolation failed {reason}")
            os._exit(125)
    if child is None:
        mode = "none" if mode == "none" else "guard"
        drop = mode == "guard" and reachable_by_others((spec.argv[0], *spec.needs))
        child = _start_plain(spec, drop=spec.uid if drop else None)
    _say(status, f"isolation {mode} {reason}".rstrip())
    code = _reap_until(child)
    if events is not None:  # init reports the code's own status; the leader's is meaningless
        line = _read_line(events)
        code = int(line.split()[1]) if line.startswith("exit ") else code
    kill_tree(os.getpid(), include_root=False)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()
    _say(status, f"exit {code}")
    os._exit(0)


def _start_plain(spec: Launch, drop: int | None) -> int:
    """The fallback: the command as a child in its own process group (so a signal the guard
    allows to "its group" cannot reach the launcher), optionally as another uid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            if drop is not None:
                os.setgroups([])
                os.setresgid(drop, drop, drop)
                os.setresuid(drop, drop, drop)
            os.execvpe(spec.argv[0], list(spec.argv), os.environ)
        except OSError as exc:
            os.write(2, f"sandbox: cannot start {spec.argv[0]!r}: {exc}\n".encode())
        os._exit(127)
    return pid


def _reap_until(child: int) -> int:
    """Wait for `child`, reaping the orphans that reparent to the launcher meanwhile."""
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status)


def _start_namespaced(spec: Launch, status: int) -> tuple[int | None, int | None, str]:
    """Fork the leader and map its ids; returns (leader pid, event pipe, "") or
    (None, None, why not)."""
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    leader = os.fork()
    if leader == 0:
        for fd in (status, up_r, go_w):
            os.close(fd)
        try:
            _leader(spec, up_w, go_r)
        except BaseException as exc:  # noqa: BLE001 - any failure means: fall back
            _say(up_w, f"fail {exc}")
        os._exit(125)
    for fd in (up_w, go_r):
        os.close(fd)
    line = _read_line(up_r)
    if line == "unshared":
        try:
            outer_uid = os.geteuid() if spec.uid is None else spec.uid
            outer_gid = os.getegid() if spec.uid is None else spec.uid
            _write(f"/proc/{leader}/setgroups", "deny")  # groups cannot be changed inside
            _write(f"/proc/{leader}/uid_map", f"0 {outer_uid} 1")
            _write(f"/proc/{leader}/gid_map", f"0 {outer_gid} 1")
            os.write(go_w, b"go")
            line = _read_line(up_r)
        except OSError as exc:
            line = f"fail uid map: {exc}"
    os.close(go_w)
    if line == "ready":
        return leader, up_r, ""
    kill_tree(leader, include_root=True)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(leader, 0)
    os.close(up_r)
    return None, None, line.removeprefix("fail ") or "the namespaced child died"


def _leader(spec: Launch, up: int, go: int) -> None:
    if os.geteuid() == 0:  # root's supplementary groups would follow it into the namespace
        _check(_libc().setgroups(0, None), "setgroups")
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC
    _check(_libc().unshare(flags | (0 if spec.network else CLONE_NEWNET)), "unshare")
    _say(up, "unshared")
    if os.read(go, 2) != b"go":
        os._exit(125)
    init = os.fork()
    if init == 0:
        _init(spec, up)
    os.close(up)
    _, status = os.waitpid(init, 0)
    os._exit(0 if status == 0 else 125)  # init died unreported: the run must not look ok


def _init(spec: Launch, up: int) -> None:
    """Pid 1 of the new namespace: build the view, lock it, start the code, reap, report."""
    try:
        # Opened before the uid changes (a root caller may search its 0700 home only as root)
        # and inside the new mount namespace (a bind mount's source must belong to it).
        fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in (spec.workspace, *spec.expose)}
        os.setresgid(0, 0, 0)  # become the mapped uid (the caller, or nobody for root)
        os.setresuid(0, 0, 0)
        _prctl(PR_SET_DUMPABLE, 1)  # a uid change cleared it; /proc/self must stay ours
        _build_view(spec, fds)
        _check(_libc().unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare (nested)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{INNER_ID} 0 1")
        _write("/proc/self/gid_map", f"{INNER_ID} 0 1")
        _prctl(PR_SET_DUMPABLE, 0)  # the code may not ptrace its init
        if not os.access(spec.argv[0], os.X_OK):
            raise OSError(errno.ENOENT, f"{spec.argv[0]} is not reachable inside")
    except BaseException as exc:  # noqa: BLE001
        _say(up, f"fail {exc}")
        os._exit(125)
    code = os.fork()
    if code == 0:
        try:
            _prctl(PR_SET_NO_NEW_PRIVS, 1)
            os.setpgid(0, 0)
            os.chdir(spec.workspace)  # the inherited cwd is the read-only original
            _say(up, "ready")
            os.execve(spec.argv[0], list(spec.argv), os.environ)
        except OSError as exc:
            os.write(2, f"sandbox: cannot start {spec.argv[0]!r}: {exc}\n".encode())
        os._exit(127)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1 ignores what it does not handle
    _say(up, f"exit {_reap_until(code)}")
    os._exit(0)  # the kernel now kills every process left in the namespace


def _build_view(spec: Launch, fds: dict[str, int]) -> None:
    libc = _libc()

    def mount(src: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        args = [None if a is None else a.encode() for a in (src, target, fstype)]
        _check(libc.mount(*args, flags, None if data is None else data.encode()),
               f"mount {target}")

    def remount(point: str, readonly: bool, extra: int = 0) -> None:
        opts = [o for p, o in _mountinfo() if p == point][-1]  # the topmost mount there
        flags = MS_REMOUNT | MS_BIND | extra | (MS_RDONLY if readonly else 0)
        mount(None, point, None, flags | sum(v for k, v in _LOCKED.items() if k in opts))

    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates to the host
    for point, opts in _mountinfo():
        if "ro" in opts or _under(point, "/proc"):
            continue  # /proc is replaced below
        try:
            remount(point, readonly=True)
        except OSError as exc:  # hidden under another mount, or not searchable by this uid
            if exc.errno not in (errno.EACCES, errno.ENOENT, errno.EINVAL):
                raise
    for point in ("/tmp", "/dev/shm"):
        if os.path.isdir(point):
            mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec.tmp_mb}m,mode=1777")
    for folder in spec.mask:
        mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        for path in spec.expose:
            if _under(path, folder):
                os.makedirs(path, exist_ok=True)
                mount(f"/proc/self/fd/{fds[path]}", path, None, MS_BIND)
                remount(path, readonly=True)
    os.makedirs(spec.workspace, exist_ok=True)
    mount(f"/proc/self/fd/{fds[spec.workspace]}", spec.workspace, None, MS_BIND)
    remount(spec.workspace, readonly=False, extra=MS_NOSUID | MS_NODEV)
    for folder in spec.mask:
        remount(folder, readonly=True)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _mountinfo() -> list[tuple[str, set[str]]]:
    rows = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            rows.append((point, set(fields[5].split(","))))
    return rows


def _libc():  # noqa: ANN202 - a ctypes.CDLL, imported late: the caller never needs ctypes
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    _check(_libc().prctl(option, value, 0, 0, 0), "prctl")


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    with open(path, "wb", buffering=0) as f:  # one write(2): an id map must come whole
        f.write(text.encode())


def _say(fd: int, line: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (line.replace("\n", " ") + "\n").encode())


def _read_line(fd: int) -> str:
    out = b""
    with contextlib.suppress(OSError):
        while not out.endswith(b"\n") and (chunk := os.read(fd, 1)):
            out += chunk
    return out.decode(errors="replace").strip()
