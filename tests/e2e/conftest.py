"""Fixtures that start our scripted OpenAI-compatible server as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class ScriptedServer:
    def __init__(self, tmp: Path, plan: str, extra: list[str] | None = None):
        self.log = tmp / "requests.jsonl"
        port_file = tmp / "port"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "scripted_server.py"), "--port-file", str(port_file),
             "--log", str(self.log), "--plan", plan, *(extra or [])],
        )
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("scripted server did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> list[dict]:
        import json

        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def scripted_server(tmp_path):
    servers: list[ScriptedServer] = []

    def start(plan: str = "harmful,good", extra: list[str] | None = None) -> ScriptedServer:
        d = tmp_path / f"server{len(servers)}"
        d.mkdir()
        server = ScriptedServer(d, plan, extra)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
