"""Each escape a hostile tryout found, replayed against the sandbox in both modes.

"auto" gets the namespaces where the kernel lends them (and the guard where it does not: then
the same assertions hold for the fallback); "guard" is the fallback, forced. Attacks that only
the kernel can stop (libc through ctypes) run where namespaces work and are skipped, naming what
is missing, where they do not.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from procs import with_marker

from skilltrain.harness import isolation
from skilltrain.harness.sandbox import Limits, Sandbox, SandboxError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="namespaces, seccomp, /proc")
MODES = ["auto", "guard"]


@pytest.fixture(scope="module")
def namespaces() -> str | None:
    """None when namespace mode works here, else why not."""
    try:
        with Sandbox(isolation="namespaces") as box:
            box.run_python("pass")
    except SandboxError as exc:
        return str(exc)
    return None


def need_namespaces(why_not: str | None) -> None:
    if why_not is not None:
        pytest.skip(f"needs user, mount and pid namespaces ({why_not})")


@pytest.fixture
def outside() -> Path:
    """A folder outside the workspace on the root file system (not under /tmp, which is a
    private tmpfs inside the namespaces, so a write there would prove nothing)."""
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="skilltrain-outside-", dir=base))
    (folder / "keep.txt").write_text("original")
    (folder / "keep.txt").chmod(0o644)
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def unchanged(folder: Path) -> bool:
    victim = folder / "keep.txt"
    return (sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
            and victim.read_text() == "original" and stat.S_IMODE(victim.stat().st_mode) == 0o644)


# -- 1. the caller's environment through /proc -------------------------------------------------

READ_ENVIRON = """
import ctypes, os, sys
target = int(sys.argv_parent)
def by_python(path):
    try:
        return open(path, 'rb').read().decode(errors='replace')
    except OSError as exc:
        return f'refused: {exc}'
def by_libc(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.open(path.encode(), os.O_RDONLY)
    if fd < 0:
        return f'refused: errno {ctypes.get_errno()}'
    buf = ctypes.create_string_buffer(1 << 16)
    n = libc.read(fd, buf, len(buf))
    return buf.raw[:max(n, 0)].decode(errors='replace')
found = {'python': by_python(f'/proc/{target}/environ')}
if USE_LIBC:
    found['libc'] = by_libc(f'/proc/{target}/environ')
for name in os.listdir('/proc'):  # and every other process it can see
    if name.isdigit():
        found[name] = by_python(f'/proc/{name}/environ')
print(found)
"""

PARENT = """
import json, os, sys
from skilltrain.harness.sandbox import Sandbox
code = sys.stdin.read().replace('sys.argv_parent', repr(str(os.getpid())))
with Sandbox(isolation=sys.argv[1]) as box:
    result = box.run_python(code)
print(json.dumps({'stdout': result.stdout, 'stderr': result.stderr, 'mode': result.isolation}))
"""


def run_as_parent_with_key(mode: str, code: str, secret: str) -> dict[str, str]:
    """The key must be in the parent's *initial* environment (what /proc/<pid>/environ shows),
    so the sandbox runs in a fresh interpreter started with it."""
    env = {**os.environ, "OPENAI_API_KEY": secret}
    done = subprocess.run([sys.executable, "-c", PARENT, mode], input=code, env=env,
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", MODES)
def test_the_parents_environment_is_out_of_reach(mode: str) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    out = run_as_parent_with_key(mode, READ_ENVIRON.replace("USE_LIBC", "False"), secret)
    assert out["mode"] in ("namespaces", "guard") and (mode == "auto" or out["mode"] == mode)
    assert secret not in out["stdout"] + out["stderr"]
    assert "refused" in out["stdout"], out  # the attempt was made and failed
    if out["mode"] == "guard":
        assert "sandbox: reading another process's /proc entries" in out["stdout"]


def test_the_parents_environment_is_out_of_reach_even_through_libc(namespaces) -> None:
    need_namespaces(namespaces)
    secret = f"sk-test-{uuid.uuid4().hex}"
    out = run_as_parent_with_key("namespaces", READ_ENVIRON.replace("USE_LIBC", "True"), secret)
    assert out["mode"] == "namespaces"
    assert secret not in out["stdout"] + out["stderr"]
    seen = eval(out["stdout"])  # noqa: S307 - a dict the child printed
    assert seen["libc"].startswith("refused") and seen["python"].startswith("refused")
    assert {k for k in seen if k.isdigit()} <= {"1", "2", "3"}  # only its own processes


# -- 2. writes outside the workspace -----------------------------------------------------------

def write_attempts(outside: Path, tmp_db: str) -> dict[str, str]:
    victim = outside / "keep.txt"
    return {
        "sqlite outside": f"import sqlite3; c = sqlite3.connect({str(outside / 'x.db')!r}); "
                          "c.execute('create table t (x)'); c.commit()",
        "sqlite in /tmp": f"import sqlite3; c = sqlite3.connect({tmp_db!r}); "
                          "c.execute('create table t (x)'); c.commit()",
        "sqlite attach": f"import sqlite3; c = sqlite3.connect('in.db'); "
                         f"c.execute(\"attach database '{outside / 'a.db'}' as a\"); "
                         "c.execute('create table a.t (x)'); c.commit()",
        "mkfifo": f"import os; os.mkfifo({str(outside / 'fifo')!r})",
        "mknod": f"import os, stat; os.mknod({str(outside / 'node')!r}, stat.S_IFREG | 0o600)",
        "open dir_fd": f"import os; d = os.open({str(outside)!r}, os.O_RDONLY); "
                       "os.close(os.open('escaped', os.O_WRONLY | os.O_CREAT, dir_fd=d))",
        "mkdir dir_fd": f"import os; d = os.open({str(outside)!r}, os.O_RDONLY); "
                        "os.mkdir('escaped', dir_fd=d)",
        "chmod fd": f"import os; fd = os.open({str(victim)!r}, os.O_RDONLY); "
                    "os.chmod(fd, 0o777)",
        "fchmod": f"import os; fd = os.open({str(victim)!r}, os.O_RDONLY); "
                  "os.fchmod(fd, 0o777)",
    }


@pytest.mark.parametrize("mode", MODES)
def test_writes_outside_are_refused_whatever_the_api(mode: str, outside: Path) -> None:
    tmp_db = f"/tmp/skilltrain-escape-{uuid.uuid4().hex}.db"
    with Sandbox(isolation=mode) as box:
        for what, code in write_attempts(outside, tmp_db).items():
            result = box.run_python(code)
            assert not result.ok, (what, result.stdout)
            assert "Error" in result.stderr, (what, result.stderr)
            assert unchanged(outside), what
        assert box.isolation in ("namespaces", "guard") and (mode == "auto" or
                                                             box.isolation == mode)
        if box.isolation == "guard":  # the guard names itself; the kernel says EROFS
            assert "sandbox:" in result.stderr
        inside = box.run_python("import os, sqlite3\n"
                                "os.mkfifo('fifo')\n"
                                "sqlite3.connect('ok.db').execute('create table t (x)')\n"
                                "d = os.open('.', os.O_RDONLY)\n"
                                "os.close(os.open('made', os.O_WRONLY | os.O_CREAT, dir_fd=d))\n"
                                "fd = os.open('made', os.O_RDONLY); os.fchmod(fd, 0o600)\n")
        assert inside.ok, inside.stderr  # the same calls work inside the workspace
        assert {"fifo", "ok.db", "made"} <= {p.name for p in box.workspace.iterdir()}
    assert not os.path.exists(tmp_db)


LIBC_WRITES = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def tried(name, rc):
    out[name] = 'refused' if rc < 0 else 'done'
tried('creat', libc.creat(b'OUT/made', 0o644))
tried('mkfifo', libc.mkfifo(b'OUT/fifo', 0o644))
d = os.open('OUT', os.O_RDONLY)
tried('openat', libc.openat(d, b'escaped', os.O_WRONLY | os.O_CREAT, 0o644))
fd = os.open('OUT/keep.txt', os.O_RDONLY)
tried('fchmod', libc.fchmod(fd, 0o777))
tried('tmp', libc.creat(b'TMPFILE', 0o644))
print(out)
"""


def test_the_kernel_refuses_writes_made_through_libc(namespaces, outside: Path) -> None:
    need_namespaces(namespaces)
    tmp_file = f"/tmp/skilltrain-escape-{uuid.uuid4().hex}"
    code = LIBC_WRITES.replace("OUT", str(outside)).replace("TMPFILE", tmp_file)
    with Sandbox(isolation="namespaces") as box:
        result = box.run_python(code)
    assert result.ok, result.stderr
    tried = eval(result.stdout)  # noqa: S307
    assert tried == {"creat": "refused", "mkfifo": "refused", "openat": "refused",
                     "fchmod": "refused", "tmp": "done"}  # /tmp is the sandbox's own tmpfs
    assert unchanged(outside) and not os.path.exists(tmp_file)


# -- 3. a shell through _posixsubprocess.fork_exec ---------------------------------------------

FORK_EXEC = """
import importlib.util, os, sys
import _posixsubprocess
if FRESH:  # a second copy of the module holds the unwrapped function
    spec = importlib.util.find_spec('_posixsubprocess')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fork_exec = module.fork_exec
else:
    fork_exec = _posixsubprocess.fork_exec
r, w = os.pipe()
argv = [b'/bin/sh', b'-c', b'echo pwned > shell_ran']
head = [argv, [b'/bin/sh'], True, (w,), None, None, -1, -1, -1, -1, -1, -1, r, w, True, False]
tail = [None, None, None, -1, None]  # gid, extra_groups, uid, umask, preexec_fn
for args in (head + [-1] + tail + [True], head + [-1] + tail, head + tail):  # 3.12, 3.11, 3.10
    try:
        pid = fork_exec(*args)
        break
    except TypeError:
        continue
os.close(w)
failure = os.read(r, 1000)
os.waitpid(pid, 0)
print('exec failed:', failure.decode(errors='replace'))
"""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fresh", [False, True], ids=["wrapped", "fresh-module"])
def test_fork_exec_cannot_start_a_shell(mode: str, fresh: bool) -> None:
    import platform

    if fresh and platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"the execve seccomp filter knows x86_64 and aarch64, not {platform.machine()}")
    with Sandbox(isolation=mode) as box:
        result = box.run_python(FORK_EXEC.replace("FRESH", str(fresh)))
        assert not (box.workspace / "shell_ran").exists(), result.stdout
    if fresh:  # the kernel (seccomp) refused the execve in the forked child
        assert "exec failed" in result.stdout and "OSError:" in result.stdout, result.stderr
    else:  # the guard refused before forking
        assert not result.ok and "sandbox: starting other programs" in result.stderr


def test_programs_start_when_allowed() -> None:
    with Sandbox(Limits(allow_subprocess=True)) as box:
        result = box.run_python(FORK_EXEC.replace("FRESH", "True"))
        assert result.ok and (box.workspace / "shell_ran").read_text() == "pwned\n", result


# -- 4. setsid children and the timeout --------------------------------------------------------

SCATTER = """
import os, subprocess, sys, time
sleeper = ['import os, time; os.setsid(); time.sleep(60)', MARKER]
subprocess.Popen([sys.executable, '-c', *sleeper], start_new_session=True)
if os.fork() == 0:  # a daemon: fork, setsid, fork again, the middle exits
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', *sleeper])
    os._exit(0)
if os.fork() == 0:  # a forked copy of this interpreter that never execs
    os.setsid()
    time.sleep(60)
    os._exit(0)
print('scattered', flush=True)
WAIT
"""


@pytest.mark.parametrize("mode", MODES)
def test_setsid_children_die_with_the_timeout_promptly(mode: str) -> None:
    marker = f"scatter-{uuid.uuid4().hex}"
    code = SCATTER.replace("MARKER", repr(marker)).replace("WAIT", "time.sleep(60)")
    limits = Limits(timeout_s=6, allow_subprocess=True)
    with Sandbox(limits, isolation=mode) as box:
        started = time.monotonic()
        result = box.run_python(code)
        took = time.monotonic() - started
        workspace = str(box.workspace)
        assert "scattered" in result.stdout, result.stderr
        assert result.timed_out and result.limit == "timeout"
        assert took < limits.timeout_s + 1.0, took
        time.sleep(0.2)  # SIGKILLed processes take a moment to leave /proc
        assert with_marker(marker) == [], "a setsid sleeper survived the timeout"
        assert with_marker(workspace) == [], "a forked interpreter survived the timeout"


@pytest.mark.parametrize("mode", MODES)
def test_setsid_children_die_after_a_clean_exit(mode: str) -> None:
    marker = f"scatter-{uuid.uuid4().hex}"
    code = SCATTER.replace("MARKER", repr(marker)).replace("WAIT", "time.sleep(0.5)")
    with Sandbox(Limits(timeout_s=20, allow_subprocess=True), isolation=mode) as box:
        result = box.run_python(code)
        assert result.ok, result.stderr
        time.sleep(0.2)
        assert with_marker(marker) == [] and with_marker(str(box.workspace)) == []


# -- the modes themselves ----------------------------------------------------------------------

class BrokenNamespaces(Sandbox):
    """A sandbox whose namespace setup must fail (it asks to bind a folder that is missing)."""

    def _launch(self) -> isolation.Launch:
        import dataclasses

        spec = super()._launch()
        return dataclasses.replace(spec, mask=("/nonexistent-mask",),
                                   expose=("/nonexistent-mask/python",))


def test_auto_falls_back_to_the_guard_and_says_so() -> None:
    with BrokenNamespaces() as box:
        first = box.run_python("print('ran')")
        assert first.ok and first.stdout == "ran\n" and first.isolation == "guard"
        assert box.isolation == "guard" and box.fallback_reason
        refused = box.run_python("open('/var/tmp/skilltrain-never', 'w')")
    assert "sandbox:" in refused.stderr and refused.isolation == "guard"
    assert not os.path.exists("/var/tmp/skilltrain-never")


def test_namespaces_mode_does_not_fall_back() -> None:
    with BrokenNamespaces(isolation="namespaces") as box, pytest.raises(
            SandboxError, match="namespaces are not available"):
        box.run_python("print('ran')")


def test_namespaces_hide_the_host_and_drop_privileges(namespaces) -> None:
    need_namespaces(namespaces)
    code = ("import os\n"
            "print(os.getuid(), os.getpid(), sorted(p for p in os.listdir('/proc') "
            "if p.isdigit()))\n"
            "print(sorted(os.listdir('/tmp')))\n")
    with Sandbox(isolation="namespaces") as box:
        result = box.run_python(code)
        assert result.ok and result.isolation == "namespaces", result.stderr
        ids, tmp = result.stdout.splitlines()
        assert ids.startswith(f"{isolation.INNER_ID} ")  # not root, no capabilities
        assert set(eval(tmp)) <= {box.workspace.name}  # noqa: S307 - not the host's /tmp
    with Sandbox(isolation="guard") as forced:
        assert forced.isolation == "guard"
    with pytest.raises(ValueError):
        Sandbox(isolation="docker")
