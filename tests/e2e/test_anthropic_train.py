"""`skilltrain train` with `anthropic:` models for both roles, as a subprocess, against our
scripted Messages API server (tests/e2e/messages_server.py) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted import GOOD_RULE, HARMFUL_RULE, make_tasks

pytest.importorskip("anthropic", reason="the anthropic SDK is not installed (pip install "
                    "'skilltrain[anthropic]')")

HERE = Path(__file__).resolve().parent
SECRET = "sk-ant-test-very-secret-456"
SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
PRICES = {"scripted-target": [1.0, 2.0], "scripted-opt": [3.0, 4.0]}  # $/MTok: in, out
FLAGS = ["--epochs", "1", "--batch-size", "6", "--lr", "2", "--gate", "strict", "--quiet",
         "--proposals", "0", "--no-screen", "--no-demonstrations"]


class MessagesServer:
    def __init__(self, tmp: Path, extra: list[str]):
        self.log = tmp / "requests.jsonl"
        port_file = tmp / "port"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "messages_server.py"),
                                      "--port-file", str(port_file), "--log", str(self.log),
                                      *extra])
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("messages server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def messages_server(tmp_path):
    servers: list[MessagesServer] = []

    def start(*extra: str) -> MessagesServer:
        folder = tmp_path / f"messages{len(servers)}"
        folder.mkdir()
        servers.append(MessagesServer(folder, list(extra)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def train(tmp: Path, server: MessagesServer, optimizer: str = "{}",
          target: str = "{}") -> tuple[subprocess.CompletedProcess, Path]:
    data = tmp / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    (tmp / "SKILL.md").write_text(SKILL)
    cfg = tmp / "run.yaml"
    cfg.write_text(
        f"data: {{path: {data}}}\nskill: {tmp / 'SKILL.md'}\nscorer: exact\n"
        "target: {model: anthropic:scripted-target, retry_backoff: 0.01, " + target[1:] + "\n"
        "optimizer: {model: anthropic:scripted-opt, retry_backoff: 0.01, " + optimizer[1:] + "\n"
        f"prices: {json.dumps(PRICES)}\n")
    out = tmp / "run"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=SECRET)
    proc = subprocess.run([sys.executable, "-m", "skilltrain.cli", "train", "--config", str(cfg),
                           *FLAGS, "--out", str(out)], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=300)
    return proc, out


def cost(usage: dict, price: list[float]) -> float:
    """What a stage costs at Anthropic's cache multipliers (writes 1.25x, reads 0.1x input)."""
    pin, pout = price
    read, write = usage.get("cache_read_tokens", 0), usage.get("cache_write_tokens", 0)
    fresh = usage["prompt_tokens"] - read - write
    return (fresh * pin + write * 1.25 * pin + read * 0.1 * pin
            + usage["completion_tokens"] * pout) / 1e6


def accepted_the_good_rule(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best
    assert summary["steps"]["accepted"] >= 1
    assert summary["val"]["best"] > summary["val"]["initial"] == 0.0
    return summary


def test_train_over_the_messages_api_caches_the_skill_and_prices_it(tmp_path, messages_server):
    server = messages_server("--plan", "harmful,good")
    proc, out = train(tmp_path, server)
    assert proc.returncode == 0, proc.stderr
    summary = accepted_the_good_rule(out)
    assert summary["steps"]["rejected"] == 1  # the harmful edit, gated out first
    entries = server.entries()
    bodies = [e["body"] for e in entries]
    # every call sends its system prompt (the skill, for the target) as a cached block; it is
    # read back after its first write, which the usage and the cost count
    assert all(b["system"][-1]["cache_control"] == {"type": "ephemeral"} for b in bodies
               if "system" in b)
    assert all("system" in b for b in bodies if b["model"] == "scripted-target")
    target = summary["usage"]["target"]
    assert target["cache_read_tokens"] > target.get("cache_write_tokens", 0) > 0
    assert summary["prompt_cache"]["read_tokens"] == sum(
        u.get("cache_read_tokens", 0) for u in summary["usage"].values())
    expected = sum(cost(u, PRICES[f"scripted-{'target' if k.startswith('target') else 'opt'}"])
                   for k, u in summary["usage_by_stage"].items())
    assert summary["cost_usd"] == pytest.approx(expected, rel=1e-4)
    undiscounted = sum(cost({"prompt_tokens": u["prompt_tokens"],
                             "completion_tokens": u["completion_tokens"]},
                            PRICES[f"scripted-{'target' if k.startswith('target') else 'opt'}"])
                       for k, u in summary["usage_by_stage"].items())
    assert summary["cost_usd"] < undiscounted
    assert "prompt cache:" in proc.stdout and "tokens read" in proc.stdout
    # structured optimizer replies came through a forced tool named after the schema
    analysts = [b for b in bodies if (b.get("tool_choice") or {}).get("name") == "AnalystReply"]
    assert len(analysts) >= 2 and all(b["tools"][-1]["name"] == "AnalystReply"
                                      for b in analysts)
    assert all("tools" not in b for b in bodies if b["model"] == "scripted-target")
    assert all(b.get("temperature") == 0.0 for b in bodies)
    # the key went out (the SDK sends it as a bearer token) and reached nothing in the run
    assert {e["headers"].get("x-api-key") or e["headers"].get("authorization", "")
            .removeprefix("Bearer ") for e in entries} == {SECRET}
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_429_and_529_are_retried_honouring_retry_after_and_never_scored(tmp_path,
                                                                        messages_server):
    server = messages_server("--plan", "harmful,good", "--faults", "429,529",
                             "--retry-after", "1")
    proc, out = train(tmp_path, server)
    assert proc.returncode == 0, proc.stderr
    summary = accepted_the_good_rule(out)
    assert summary["infra_failures"]["total"] == 0
    assert summary["infra_failures"]["retried"] == {"rate_limit": 1, "server_error": 1}
    entries = server.entries()
    limited = next(e for e in entries if e["status"] == 429)
    retry = next(e for e in entries if e["status"] == 200 and e["body"] == limited["body"])
    assert retry["t"] - limited["t"] >= 0.95  # backoff alone would be ~0.01 s


def test_thinking_budget_goes_out_with_the_optimizer_calls_only(tmp_path, messages_server):
    server = messages_server("--plan", "harmful,good")
    proc, out = train(tmp_path, server, optimizer="{thinking_budget: 2048}")
    assert proc.returncode == 0, proc.stderr
    accepted_the_good_rule(out)
    bodies = [e["body"] for e in server.entries()]
    opt = [b for b in bodies if b["model"] == "scripted-opt"]
    assert opt and all(b["thinking"] == {"type": "enabled", "budget_tokens": 2048} for b in opt)
    # the API forbids a forced tool and a temperature with thinking: the tool is asked for
    assert all(b["tool_choice"] == {"type": "auto"} and "temperature" not in b for b in opt)
    assert all(b["max_tokens"] >= 2048 + 1024 for b in opt)
    target = [b for b in bodies if b["model"] == "scripted-target"]
    assert target and all("thinking" not in b and b["temperature"] == 0.0 for b in target)
    # a reply with thinking is another model's: the name (a cache key part) says so
    start = next(json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()
                 if json.loads(line)["event"] == "start")
    assert start["optimizer"] == "anthropic:scripted-opt+thinking=2048"
    assert start["target"] == "anthropic:scripted-target"


def test_a_model_that_refuses_temperature_is_adapted_to_not_failed(tmp_path, messages_server):
    server = messages_server("--plan", "harmful,good", "--no-sampling", "scripted-target")
    proc, out = train(tmp_path, server)
    assert proc.returncode == 0, proc.stderr
    summary = accepted_the_good_rule(out)
    assert summary["infra_failures"]["total"] == 0
    assert summary["infra_failures"]["retried"].get("adapted", 0) >= 1
    answered = [e["body"] for e in server.entries()
                if e["status"] == 200 and e["body"]["model"] == "scripted-target"]
    assert answered and all("temperature" not in b for b in answered)
