"""Failing fast and loudly when the endpoint is the problem, over real sockets on 127.0.0.1.

A port with nothing listening, a server that accepts and never answers, one that answers some
calls and drops others, and one that answers every call with an error: each must end within a
bounded time, say why in one line, and exit non-zero exactly when nothing could be scored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from e2e.scripted_server import completion_body
from scripted import Script, make_tasks

import skilltrain
from skilltrain import Skill, Trainer
from skilltrain.config import ModelConfig
from skilltrain.evaluation import NothingScored
from skilltrain.models.base import ModelError
from skilltrain.models.breaker import EndpointDown
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.meter import Meter
from skilltrain.models.openai_compat import OpenAIModel

SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
MSGS = [{"role": "user", "content": "What is 1 plus 4?"}]
BOUND_S = 20.0  # a guard against hanging, not a benchmark

# fault(body, n) -> None (answer from the script), "drop" (close without a reply), or a status
Fault = Callable[[dict, int], "str | int | None"]


class Endpoint:
    """An OpenAI-compatible server in a thread that answers from tests/scripted.py, with a
    `fault` function choosing what each request gets (it can be swapped while running)."""

    def __init__(self, fault: Fault | None = None):
        self.fault: Fault = fault or (lambda body, n: None)
        self.requests = 0
        self.script = Script(analyst_plan=["good"])
        lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    endpoint.requests += 1
                    n = endpoint.requests
                what = endpoint.fault(body, n)
                if what == "drop":  # the connection closes with no reply at all
                    self.close_connection = True
                    return
                if what is None:
                    status, payload = 200, completion_body(body, endpoint.script.respond(body))
                else:
                    status, payload = int(what), {"error": {"message": f"status {what}"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:  # for the CLI's subprocesses too
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def endpoint() -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def start(fault: Fault | None = None) -> Endpoint:
        started.append(Endpoint(fault))
        return started[-1]

    yield start
    for e in started:
        e.close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound but not listening: connecting is refused, and no other process
    can start listening there while the test runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections and never sends a byte."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listening socket was shut down
            while True:
                held.append(sock.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    for conn in held:
        conn.close()


def write_inputs(tmp: Path, timeout: float = 5.0) -> Path:
    data = tmp / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    (tmp / "SKILL.md").write_text(SKILL)
    cfg = tmp / "run.yaml"
    cfg.write_text(
        f"data: {{path: {data}}}\nskill: {tmp / 'SKILL.md'}\nscorer: exact\n"
        f"target: {{model: openai:t, retry_backoff: 0.01, timeout: {timeout}}}\n"
        f"optimizer: {{model: openai:o, retry_backoff: 0.01, timeout: {timeout}}}\n"
        "train: {epochs: 1, batch_size: 6, lr: 1, lr_min: 1, proposals: 0, screen: false,\n"
        "        demonstrations: false, slow_update: 'off', meta_skill: false}\n"
        "gate: {rule: strict}\n")
    return cfg


def cli(args: list[str], base_url: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-test")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "skilltrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - started


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def eval_args(tmp: Path, *extra: str) -> list[str]:
    return ["eval", "--skill", str(tmp / "SKILL.md"), "--data", str(tmp / "tasks.jsonl"),
            "--scorer", "exact", "--target", "openai:t", *extra]


def train_args(cfg: Path, out: Path) -> list[str]:
    return ["train", "--config", str(cfg), "--out", str(out), "--quiet"]


# -- the CLI: exit codes and one-line messages ---------------------------------------------------


def test_refused_port_fails_eval_and_train_fast_with_one_line(tmp_path, refused_url):
    cfg = write_inputs(tmp_path)
    want = f"error: target endpoint {refused_url} unreachable (connection refused, 5 attempts)"
    proc, wall = cli(eval_args(tmp_path), refused_url, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc) == [want] and proc.stderr.rstrip().endswith(want)
    assert "score" not in proc.stdout
    assert wall < BOUND_S
    out = tmp_path / "run"
    proc, wall = cli(train_args(cfg, out), refused_url, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc) == [want]
    assert "before / after" not in proc.stdout
    assert wall < BOUND_S
    assert not out.exists()  # failed before its first checkpoint: nothing half-made is left


def test_silent_server_ends_eval_and_train_within_the_shown_deadline(tmp_path, silent_url):
    cfg = write_inputs(tmp_path, timeout=1.0)
    want = (f"error: target endpoint {silent_url} unreachable (no reply within the 1s deadline, "
            "5 attempts)")
    proc, wall = cli(eval_args(tmp_path, "--timeout", "1"), silent_url, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "deadline 1s per call" in proc.stderr.splitlines()[0]  # said before any call
    assert error_lines(proc) == [want]
    assert wall < BOUND_S
    proc, wall = cli(train_args(cfg, tmp_path / "run"), silent_url, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "model calls: deadline 1s per call (connect 1s)" in proc.stderr
    assert error_lines(proc) == [want]
    assert wall < BOUND_S


def test_endpoint_failing_some_calls_mid_run_completes_with_failures_counted(tmp_path,
                                                                             endpoint):
    always = "What is 0 plus 3?"  # one task's calls never get a reply: a counted failure
    seen: set[str] = set()
    lock = threading.Lock()

    def flaky(body: dict, n: int) -> str | None:
        if body["messages"][-1]["content"] == always:
            return "drop"
        key = json.dumps(body, sort_keys=True)
        with lock:  # every third new request loses its first attempt: retried, then answered
            first = key not in seen
            seen.add(key)
            return "drop" if first and len(seen) % 3 == 0 else None

    server = endpoint(flaky)
    cfg = write_inputs(tmp_path)
    out = tmp_path / "run"
    proc, _ = cli(train_args(cfg, out), server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc)
    summary = json.loads((out / "summary.json").read_text())
    failures = summary["infra_failures"]
    lost = failures["by_kind"].get("connection", 0)  # the task that always fails, each time
    assert lost >= 1
    assert failures["retried"].get("connection", 0) > 4 * lost  # 4 retries each, and the rest
    assert summary["stopped"] is None
    assert summary["val"]["initial"] is not None and summary["steps"]["total"] == 2
    proc, _ = cli([*eval_args(tmp_path), "--json"], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["infra_failures"] == 1 and result["n"] == 23  # excluded, not scored wrong


def test_nothing_scored_exits_non_zero_with_one_line(tmp_path, endpoint):
    server = endpoint(lambda body, n: 400)  # answers, but never usefully
    cfg = write_inputs(tmp_path)
    proc, _ = cli(eval_args(tmp_path), server.base_url, tmp_path)
    assert proc.returncode == 1, proc.stderr
    [line] = error_lines(proc)
    assert line.startswith("error: nothing could be scored: all 24 items failed (http_error 24)")
    assert "HTTP 400" in line
    proc, _ = cli(train_args(cfg, tmp_path / "run"), server.base_url, tmp_path)
    assert proc.returncode == 1, proc.stderr
    [line] = error_lines(proc)
    assert line.startswith("error: nothing could be scored: all 6 items failed (http_error 6)")


# -- the Python API -----------------------------------------------------------------------------


def test_evaluate_and_fit_raise_instead_of_a_none_score(tmp_path, endpoint, refused_url):
    server = endpoint(lambda body, n: 400)
    target = ModelConfig(model="t", base_url=server.base_url, api_key="k")
    with pytest.raises(NothingScored, match="all 3 items failed") as caught:
        skilltrain.evaluate(SKILL, make_tasks(3), target=target, scorer="exact")
    assert caught.value.kinds == {"http_error": 3}
    model = OpenAIModel("t", base_url=server.base_url, api_key="k", timeout=5)
    trainer = Trainer({"out": str(tmp_path / "run"), "scorer": "exact"}, target=model,
                      optimizer=model)
    with pytest.raises(NothingScored, match="nothing could be scored: all 6 items"):
        trainer.fit(make_tasks(24), Skill(SKILL))  # the baseline scored nothing
    assert not hasattr(trainer, "summary_")
    secret = refused_url.replace("http://", "http://user:secret@") + "?api-key=k2"
    with pytest.raises(EndpointDown) as down:
        skilltrain.evaluate(SKILL, make_tasks(3), target=ModelConfig(
            model="t", base_url=secret, api_key="k", retry_backoff=0.01), scorer="exact")
    assert down.value.role == "target" and not down.value.answered
    assert str(down.value) == f"target endpoint {refused_url} unreachable (connection " \
                              "refused, 5 attempts)"  # no credentials, no query


def test_an_outage_mid_run_stops_cleanly_and_resumes(tmp_path, endpoint, monkeypatch):
    import skilltrain.run_setup as run_setup

    @dataclasses.dataclass
    class QuickStop(CallSettings):  # the run's clients stop after 3 failures in a row
        stop_after: int = 3
        stop_after_s: float = 0.0

    monkeypatch.setattr(run_setup, "CallSettings", QuickStop)
    server = endpoint()
    target_calls = iter(range(1, 10**6))

    def dies(body: dict, n: int) -> str | None:  # the target dies after 12 calls (step 1's gate)
        if "response_format" in body:
            return None
        return "drop" if next(target_calls) > 12 else None

    server.fault = dies

    def model() -> OpenAIModel:  # one per run: a client is bound to its event loop
        return OpenAIModel("t", base_url=server.base_url, api_key="k", timeout=5)

    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "target": {"model": "t", "retry_backoff": 0.001},
              "optimizer": {"model": "t", "retry_backoff": 0.001},
              "train": {"epochs": 1, "batch_size": 6, "lr": 1, "lr_min": 1, "proposals": 0,
                        "screen": False, "demonstrations": False}}
    trainer = Trainer(config, target=model(), optimizer=model())
    with pytest.raises(EndpointDown) as down:
        trainer.fit(make_tasks(24), Skill(SKILL))
    assert down.value.answered and "stopped answering" in str(down.value)
    assert "skilltrain resume" in str(down.value) and str(trainer.run_dir_) in str(down.value)
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["stopped"] and "stopped answering" in summary["stopped"]
    assert summary["steps"]["total"] == 0
    sent = server.requests
    assert sent < 40  # the end-of-run evaluation did not wait out retries on a dead endpoint
    server.fault = lambda body, n: None  # back up: the same run continues from its checkpoint
    resumed = Trainer(config, target=model(), optimizer=model()).fit(make_tasks(24),
                                                                      Skill(SKILL))
    assert resumed.summary_["stopped"] is None and resumed.summary_["steps"]["total"] == 2
    assert server.requests > sent


# -- the breaker and the deadline, one client at a time -------------------------------------------


def client_for(url: str, timeout: float = 5.0, **settings: float) -> RoleClient:
    model = OpenAIModel("t", base_url=url, api_key="k", timeout=timeout)
    return RoleClient(model, "target", Meter(),
                      settings=CallSettings(backoff_s=0.001, max_backoff_s=0.002, **settings))


async def outcome(client: RoleClient) -> object:
    try:
        return (await client.complete(MSGS, stage="rollout")).text
    except ModelError as exc:
        return exc


def test_after_a_first_answer_short_outages_are_retried_not_fatal(endpoint):
    server = endpoint()
    client = client_for(server.base_url, stop_after=6, stop_after_s=0.0)

    async def go() -> list[object]:
        first = await outcome(client)
        server.fault = lambda body, n: "drop" if n <= 5 else None  # 4 drops, then answers
        return [first, await outcome(client)]

    assert asyncio.run(go()) == ["The answer is 5."] * 2
    assert client.meter.retries["connection"] == 4 and not client.meter.failures


def test_a_long_outage_opens_the_breaker_and_later_calls_are_not_sent(endpoint):
    server = endpoint()
    client = client_for(server.base_url, retries=1, stop_after=3, stop_after_s=0.0)

    async def go() -> list[object]:
        first = await outcome(client)
        server.fault = lambda body, n: "drop"
        return [first, await outcome(client), await outcome(client), await outcome(client)]

    first, failed, opened, after = asyncio.run(go())
    assert first == "The answer is 5."
    assert isinstance(failed, ModelError) and failed.kind == "connection"  # 2 in a row: retried
    assert isinstance(opened, EndpointDown) and opened.answered and opened.attempts == 3
    assert "stopped answering" in str(opened) and server.base_url in str(opened)
    sent = server.requests
    assert isinstance(after, ModelError) and after.kind == "unreachable"
    assert server.requests == sent == 4  # the open breaker sent nothing
    assert client.meter.failures == {"connection": 1, "unreachable": 2}


def test_the_deadline_bounds_a_reply_that_trickles():
    """The SDK's read timeout restarts with every byte; the call's deadline must not."""
    sock = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        conn = sock.accept()[0]
        conn.recv(65536)
        with contextlib.suppress(OSError), conn:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n")
            for _ in range(60):  # a byte every 0.1 s: 6 s in all
                conn.sendall(b" ")
                time.sleep(0.1)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    client = client_for(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", 0.5, retries=0)
    started = time.monotonic()
    err = asyncio.run(outcome(client))
    assert isinstance(err, ModelError) and err.kind == "timeout"
    assert err.message == "no reply within the 0.5s deadline"
    assert time.monotonic() - started < 3  # not the 6 s the trickle would take
    thread.join(timeout=10)
    sock.close()
