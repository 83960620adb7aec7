"""The sandbox's limits, each proved by a child that tries to break it."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
from procs import wait_marker_gone

from skilltrain.harness.sandbox import (
    Limits,
    Sandbox,
    SandboxError,
    clip_middle,
    run_process,
    safe_env,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups, rlimits, /proc")


def test_runs_code_in_a_fresh_workspace() -> None:
    with Sandbox() as box:
        result = box.run_python("import os; print(os.getcwd()); print(2 + 3)")
        assert result.ok, result.stderr
        cwd, five = result.stdout.split()
        assert Path(cwd) == box.workspace and five == "5"
        workspace = box.workspace
    assert not workspace.exists()  # removed on exit
    with Sandbox() as a, Sandbox() as b:
        assert a.workspace != b.workspace


def test_timeout_kills_the_whole_process_group() -> None:
    marker = f"sleeper-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)',\n"
        f"                         {marker!r}])\n"
        "open('pids.txt', 'w').write(f'{child.pid}')\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    limits = Limits(timeout_s=3, allow_subprocess=True)
    with Sandbox(limits, keep=True) as box:
        started = time.monotonic()
        result = box.run_python(code)
        took = time.monotonic() - started
        assert int((box.workspace / "pids.txt").read_text()) > 0
    try:
        assert result.timed_out and result.limit == "timeout" and not result.ok
        assert "started" in result.stdout
        assert took < 20
        assert wait_marker_gone(marker), "the grandchild sleeper survived the timeout"
        assert "wall-clock timeout" in result.render()
    finally:
        import shutil

        shutil.rmtree(box.workspace, ignore_errors=True)


def test_background_children_do_not_outlive_a_clean_exit(tmp_path: Path) -> None:
    marker = f"sleeper-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)',\n"
        f"                         {marker!r}],\n"
        "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(child.pid)\n"
    )
    with Sandbox(Limits(timeout_s=20, allow_subprocess=True)) as box:
        result = box.run_python(code)
    assert result.ok and not result.timed_out, result.stderr
    assert int(result.stdout.strip()) > 0
    assert wait_marker_gone(marker)


def test_cpu_limit_stops_a_busy_loop() -> None:
    with Sandbox(Limits(timeout_s=60, cpu_s=1)) as box:
        result = box.run_python("while True:\n    pass\n")
    assert not result.timed_out
    assert result.limit == "cpu"
    assert not result.ok


def test_memory_limit_refuses_a_large_allocation() -> None:
    with Sandbox(Limits(timeout_s=30, memory_mb=300)) as box:
        small = box.run_python("x = bytearray(50 * 1024 * 1024); print(len(x))")
        big = box.run_python("x = bytearray(1024 * 1024 * 1024); print('allocated')")
    assert small.ok, small.stderr
    assert not big.ok and "allocated" not in big.stdout
    assert "MemoryError" in big.stderr and big.limit == "memory"


def test_file_size_limit() -> None:
    with Sandbox(Limits(file_mb=1)) as box:
        result = box.run_python("open('big.bin', 'wb').write(b'x' * (3 * 1024 * 1024))")
        size = (box.workspace / "big.bin").stat().st_size
    assert not result.ok and result.limit == "file size"
    assert size <= 1024 * 1024


def test_environment_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    with Sandbox() as box:
        result = box.run_python("import os, json; print(json.dumps(dict(os.environ)))")
        assert result.ok, result.stderr
        assert "sk-test-secret" not in result.stdout and "ghp-secret" not in result.stdout
        assert "OPENAI_API_KEY" not in result.stdout
        assert str(box.workspace) in result.stdout  # HOME and TMPDIR point inside
        shown = box.run(["/bin/sh", "-c", "env"], passthrough=["GITHUB_TOKEN"])
    assert "GITHUB_TOKEN=ghp-secret" in shown.stdout  # only when named on purpose
    assert "sk-test-secret" not in shown.stdout
    env = safe_env("/w")
    assert set(env) >= {"PATH", "HOME", "TMPDIR", "LANG"} and env["HOME"] == "/w"


def test_writes_outside_the_workspace_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "keep.txt"
    victim.write_text("original")
    attempts = {
        "open": f"open({str(outside / 'new.txt')!r}, 'w').write('x')",
        "append": f"open({str(victim)!r}, 'a').write('x')",
        "os.open": f"import os; os.open({str(outside / 'n2')!r}, os.O_WRONLY | os.O_CREAT)",
        "remove": f"import os; os.remove({str(victim)!r})",
        "rename": f"import os; os.rename({str(victim)!r}, 'stolen.txt')",
        "mkdir": f"import os; os.mkdir({str(outside / 'dir')!r})",
        "symlink escape": f"import os; os.symlink({str(outside)!r}, 'link'); "
                          "open('link/escaped.txt', 'w').write('x')",
        "relative escape": "open('../escaped.txt', 'w').write('x')",
        "rmtree": f"import shutil; shutil.rmtree({str(outside)!r})",
        "chmod": f"import os; os.chmod({str(victim)!r}, 0o777)",
        "spawn": "import subprocess; subprocess.run(['touch', 'x'])",
        "signal parent": "import os, signal; os.kill(os.getppid(), signal.SIGTERM)",
        "network": "import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)",
    }
    with Sandbox() as box:
        for what, code in attempts.items():
            result = box.run_python(code)
            assert not result.ok, what
            assert "PermissionError" in result.stderr and "sandbox:" in result.stderr, (
                what, result.stderr)
            assert "_guard_main" not in result.stderr and "hook" not in result.stderr
        inside = box.run_python(
            "import os, shutil, tempfile\n"
            "open('out.txt', 'w').write('ok')\n"
            "os.makedirs('a/b'); open('a/b/c.txt', 'w').write('c')\n"
            "os.rename('out.txt', 'a/moved.txt')\n"
            "shutil.rmtree('a/b')\n"
            "fd, name = tempfile.mkstemp(); os.close(fd)\n"
            "print(sorted(os.listdir('a')), name.startswith(os.getcwd()))\n"
            "print(open(os.devnull, 'w').write('discarded'))\n"
        )
        assert inside.ok, inside.stderr
        assert inside.stdout.split("\n")[0] == "['moved.txt'] True"
    assert victim.read_text() == "original"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "escaped.txt").exists()


def test_output_is_capped_and_tracebacks_are_the_models_own() -> None:
    with Sandbox(Limits(output_bytes=2000)) as box:
        flood = box.run_python("for i in range(200000):\n    print('line', i)\n")
        error = box.run_python("def f():\n    return 1 / 0\nf()\n")
        syntax = box.run_python("x = (")
    assert flood.ok and len(flood.stdout) < 2200
    assert flood.stdout.startswith("line 0") and "line 199999" in flood.stdout
    assert "bytes of output dropped" in flood.stdout
    assert 'File "<cell>", line 2, in f' in error.stderr and "return 1 / 0" in error.stderr
    assert "ZeroDivisionError" in error.stderr and "sandbox.py" not in error.stderr
    assert "SyntaxError" in syntax.stderr


def test_a_command_that_cannot_start_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="cannot start"):
        run_process([str(tmp_path / "missing")], cwd=tmp_path, env=safe_env(tmp_path),
                    limits=Limits())


def test_clip_middle_keeps_head_and_tail() -> None:
    text = "A" * 500 + "B" * 500
    cut = clip_middle(text, 200)
    assert len(cut) <= 200 and cut.startswith("AAA") and cut.endswith("BBB")
    assert "characters cut" in cut
    assert clip_middle("short", 200) == "short"


def test_limits_default_to_sane_values() -> None:
    limits = Limits()
    assert limits.timeout_s > 0 and limits.cpu_s and limits.memory_mb and limits.file_mb
    assert not limits.allow_subprocess and not limits.allow_network
