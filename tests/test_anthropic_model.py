"""AnthropicModel over real HTTP (the official SDK against an in-process server of ours): error
mapping, rate-limit waits, adapting to refused settings; and opening `anthropic:` models."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import BaseModel

pytest.importorskip("anthropic", reason="the anthropic SDK is not installed (pip install "
                    "'skilltrain[anthropic]')")

from skilltrain.config import ConfigError, ModelConfig  # noqa: E402
from skilltrain.models.anthropic_model import AnthropicModel, api_root  # noqa: E402
from skilltrain.models.base import ModelError  # noqa: E402
from skilltrain.models.client import CallSettings, RoleClient  # noqa: E402
from skilltrain.models.meter import Meter  # noqa: E402
from skilltrain.models.registry import open_model  # noqa: E402

OK = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
      "content": [{"type": "text", "text": "5"}], "stop_reason": "end_turn",
      "stop_sequence": None,
      "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 40}}
REQUEST = {"messages": [{"role": "system", "content": "Add."},
                        {"role": "user", "content": "2+3?"}],
           "temperature": 0.0, "max_tokens": 64}


class Replies:
    """What the server answers, in order (the last repeats): (status, headers, body bytes or
    dict); and what it was sent."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, dict, object]] = [(200, {}, OK)]
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.delay = 0.0


@pytest.fixture
def server():
    replies = Replies()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            replies.bodies.append(body)
            replies.paths.append(self.path)
            if replies.delay:
                time.sleep(replies.delay)
            status, headers, payload = (replies.queue.pop(0) if len(replies.queue) > 1
                                        else replies.queue[0])
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    replies.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield replies
    httpd.shutdown()
    httpd.server_close()


def error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def call(url: str, model: str = "claude-haiku-4-5", request: dict | None = None, **kw):
    async def go():
        m = AnthropicModel(model, base_url=url, api_key="sk-ant-test", **kw)
        try:
            return await m.complete(request or REQUEST), m
        finally:
            await m.aclose()
    return asyncio.run(go())


def failure(url: str, **kw) -> ModelError:
    with pytest.raises(ModelError) as info:
        call(url, **kw)
    return info.value


def test_a_reply_over_http_posts_to_v1_messages_with_usage(server):
    done, model = call(server.url + "/v1")  # an OpenAI-style base URL works too
    assert done.text == "5" and done.finish_reason == "stop"
    assert done.usage.prompt_tokens == 43 and done.usage.cache_read_tokens == 40
    assert server.paths == ["/v1/messages"]
    assert server.bodies[0]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert model.name == "anthropic:claude-haiku-4-5"


def test_429_is_a_rate_limit_with_the_servers_wait(server):
    server.queue = [(429, {"retry-after": "7"}, error("rate_limit_error", "slow down"))]
    exc = failure(server.url)
    assert exc.kind == "rate_limit" and exc.retryable and exc.retry_after == 7.0


def test_429_without_retry_after_waits_for_the_exhausted_limits_reset(server):
    reset = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
    server.queue = [(429, {"anthropic-ratelimit-tokens-remaining": "0",
                           "anthropic-ratelimit-tokens-reset": reset,
                           "anthropic-ratelimit-requests-remaining": "12",
                           "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z"},
                     error("rate_limit_error", "tokens"))]
    exc = failure(server.url)
    assert exc.kind == "rate_limit" and 25 < exc.retry_after <= 30


def test_the_limiter_reads_anthropics_headers_and_a_429_pauses_the_role(server):
    reset = (datetime.now(timezone.utc) + timedelta(seconds=20)).isoformat()
    quota = {"anthropic-ratelimit-requests-limit": "50",
             "anthropic-ratelimit-requests-remaining": "31",
             "anthropic-ratelimit-requests-reset": reset}
    done, model = call(server.url, concurrency=8)
    assert model.limiter.quota["requests"].level is None  # no headers: nothing assumed
    server.queue = [(200, quota, OK)]
    done, model = call(server.url, concurrency=8)
    seen = model.limiter.quota["requests"]
    assert (seen.cap, seen.level) == (50, 31) and 15 < seen.until - time.monotonic() <= 20
    assert model.limiter.stats.rate_limited == 0 and model.limiter.gate.in_flight == 0

    async def refused():
        m = AnthropicModel("claude-haiku-4-5", base_url=server.url, api_key="k", concurrency=8)
        with pytest.raises(ModelError):
            await m.complete(REQUEST)
        await m.aclose()
        return m
    server.queue = [(429, {"retry-after": "7", **quota}, error("rate_limit_error", "slow"))]
    model = asyncio.run(refused())
    assert model.limiter.stats.rate_limited == 1 and model.limiter.gate.limit == 4
    assert 6 < model.limiter.paused_until - time.monotonic() <= 7  # the whole role waits
    assert model.limiter.gate.in_flight == 0  # released although the call failed


@pytest.mark.parametrize("status, kind", [(529, "server_error"), (500, "server_error"),
                                          (503, "server_error"), (401, "fatal"),
                                          (403, "fatal"), (404, "fatal"), (413, "http_error"),
                                          (400, "http_error")])
def test_status_codes_map_like_the_openai_backend(server, status, kind):
    server.queue = [(status, {}, error("overloaded_error" if status == 529 else "x", "nope"))]
    exc = failure(server.url)
    assert exc.kind == kind
    assert exc.retryable == (kind == "server_error")


def test_a_garbled_body_is_a_bad_response(server):
    server.queue = [(200, {}, b'{"id": "msg_1", "content": [')]
    assert failure(server.url).kind == "bad_response"


def test_nothing_listening_is_a_connection_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exc = failure(f"http://127.0.0.1:{port}")
    assert exc.kind == "connection" and "refused" in exc.message


def test_a_server_that_does_not_answer_times_out(server):
    server.delay = 2.0
    exc = failure(server.url, timeout=0.5)
    assert exc.kind == "timeout" and "0.5s" in exc.message


def test_a_refused_temperature_is_dropped_and_the_call_retried(server):
    """A model newer than the table: its 400 turns sampling off; RoleClient retries and counts
    the retry as "adapted"; the retry goes out without the temperature and succeeds."""
    server.queue = [(400, {}, error("invalid_request_error",
                                    "`temperature` is deprecated for this model.")),
                    (200, {}, OK)]

    async def go():
        model = AnthropicModel("claude-next", base_url=server.url, api_key="k")
        meter = Meter()
        client = RoleClient(model, "target", meter,
                            settings=CallSettings(backoff_s=0.001, max_backoff_s=0.002))
        try:
            return await client.complete(REQUEST["messages"], stage="rollout"), meter, model
        finally:
            await model.aclose()

    done, meter, model = asyncio.run(go())
    assert done.text == "5"
    assert "temperature" in server.bodies[0] and "temperature" not in server.bodies[1]
    assert meter.retries == {"adapted": 1} and not meter.failures
    assert model.caps.sampling is False


class Value(BaseModel):
    value: int


def test_a_refused_forced_tool_choice_falls_back_to_asking_for_the_tool(server):
    server.queue = [(400, {}, error("invalid_request_error",
                                    "tool_choice: forced tool use is not supported")),
                    (200, {}, {**OK, "content": [{"type": "tool_use", "id": "t",
                                                  "name": "Value", "input": {"value": 5}}],
                               "stop_reason": "tool_use"})]

    async def go():
        model = AnthropicModel("claude-next", base_url=server.url, api_key="k")
        meter = Meter()
        client = RoleClient(model, "optimizer", meter,
                            settings=CallSettings(backoff_s=0.001, max_backoff_s=0.002))
        try:
            return await client.structured(REQUEST["messages"], Value, stage="reflect"), meter
        finally:
            await model.aclose()

    reply, meter = asyncio.run(go())
    assert reply == Value(value=5) and meter.retries == {"adapted": 1}
    first, second = server.bodies
    assert first["tool_choice"] == {"type": "tool", "name": "Value"}
    assert second["tool_choice"] == {"type": "auto"}
    assert "`Value` tool" in second["system"][-1]["text"]


def test_a_refused_thinking_budget_stops_the_run_with_what_to_change(server):
    server.queue = [(400, {}, error("invalid_request_error",
                                    '"thinking.type.enabled" is not supported for this model'))]
    exc = failure(server.url, model="claude-next", thinking_budget=2048)
    assert exc.kind == "fatal" and "thinking_budget" in exc.message
    assert server.bodies[0]["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert server.bodies[0]["max_tokens"] == 64 + 2048


def test_api_root_strips_an_openai_style_v1():
    assert api_root("http://h:1/v1/") == "http://h:1"
    assert api_root("https://api.anthropic.com") == "https://api.anthropic.com"
    assert api_root(None) is None


# -- opening anthropic: models ----------------------------------------------------------------


def open_one(cfg: ModelConfig, role: str = "optimizer"):
    async def go():
        async with AsyncExitStack() as stack:
            model = await open_model(cfg, stack, role)
            return model.name, model.base_url
    return asyncio.run(go())


def test_open_model_reads_the_anthropic_environment(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")
    name, url = open_one(ModelConfig(model="anthropic:claude-sonnet-4-5", thinking_budget=4096))
    assert name == "anthropic:claude-sonnet-4-5+thinking=4096"
    assert url.startswith("http://127.0.0.1:9")


def test_open_model_gives_the_role_its_rpm_and_tpm(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")

    async def go():
        async with AsyncExitStack() as stack:
            model = await open_model(ModelConfig(model="anthropic:claude-haiku-4-5", rpm=30,
                                                 tpm=9000, concurrency=5), stack, "target")
            return model.limiter
    limiter = asyncio.run(go())
    assert (limiter.limits.rpm, limiter.limits.tpm, limiter.gate.maximum) == (30, 9000, 5)


def test_open_model_refuses_what_cannot_work(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="optimizer.model .*no API key; set ANTHROPIC_API_KEY"):
        open_one(ModelConfig(model="anthropic:claude-haiku-4-5"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    with pytest.raises(ConfigError, match="optimizer.thinking_budget: claude-opus-4-7 takes no"):
        open_one(ModelConfig(model="anthropic:claude-opus-4-7", thinking_budget=2048))
    with pytest.raises(ConfigError, match="target.thinking_budget: only anthropic: models"):
        open_one(ModelConfig(model="openai:gpt-4o", base_url="http://127.0.0.1:9/v1",
                             thinking_budget=2048), role="target")


def test_a_missing_sdk_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)  # `import anthropic` now fails
    monkeypatch.delitem(sys.modules, "skilltrain.models.anthropic_model")
    with pytest.raises(ConfigError) as info:
        open_one(ModelConfig(model="anthropic:claude-haiku-4-5", api_key="k"))
    assert str(info.value) == ("optimizer.model 'anthropic:claude-haiku-4-5': the anthropic "
                               "package is not installed; pip install 'skilltrain[anthropic]'")
