"""RoleClient (cache, retries, structured output, replay), Meter, and OpenAIModel over HTTP."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import BaseModel

from skilltrain.models.base import Completion, ModelError
from skilltrain.models.cache import ResponseCache, request_key
from skilltrain.models.client import CallSettings, ReplayMiss, RoleClient
from skilltrain.models.fake import FakeModel
from skilltrain.models.meter import BudgetExceeded, Limits, Meter
from skilltrain.models.openai_compat import OpenAIModel
from skilltrain.records import Usage

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
FAST = CallSettings(backoff_s=0.001, max_backoff_s=0.002)


def scripted(*replies):
    """A FakeModel that gives the replies in order (str, Completion or exception)."""
    queue = list(replies)
    return FakeModel(lambda request: queue.pop(0))


def make_client(model, *, cache=None, meter=None, settings=FAST, replay=False, role="target"):
    return RoleClient(model, role, meter or Meter(), cache=cache, settings=settings,
                      replay=replay)


class Answer(BaseModel):
    value: int
    reason: str


# -- cache -------------------------------------------------------------------------------------


def test_cache_hit_on_identical_request_and_sample(tmp_path):
    model = FakeModel(lambda r: "four")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client = make_client(model, cache=cache)

    async def go():
        first = await client.complete(MSGS, stage="rollout")
        second = await client.complete(MSGS, stage="rollout")
        return first, second

    first, second = asyncio.run(go())
    assert len(model.requests) == 1
    assert first.text == second.text == "four"
    assert first.cached is False and second.cached is True
    assert second.usage == first.usage
    assert client.meter.cache_hits == 1
    assert len(cache) == 1


def test_different_sample_or_request_is_a_new_call(tmp_path):
    model = FakeModel(lambda r: "four")
    client = make_client(model, cache=ResponseCache(tmp_path / "c.sqlite"))

    async def go():
        await client.complete(MSGS, stage="rollout", sample=0)
        await client.complete(MSGS, stage="rollout", sample=1)
        await client.complete(MSGS, stage="rollout", sample=1)
        await client.complete(MSGS, stage="rollout", temperature=0.7)
        await client.complete([*MSGS[:1], {"role": "user", "content": "3+3?"}], stage="rollout")

    asyncio.run(go())
    assert len(model.requests) == 4
    assert client.meter.cache_hits == 1


def test_request_key_depends_on_model_request_and_sample():
    req = {"messages": MSGS, "temperature": 0.0}
    key = request_key("m", req, 0)
    assert key == request_key("m", json.loads(json.dumps(req)), 0)
    assert key == request_key("m", {"temperature": 0.0, "messages": MSGS}, 0)  # key order
    assert len({key, request_key("m2", req, 0), request_key("m", req, 1),
                request_key("m", {**req, "temperature": 0.1}, 0)}) == 4


def test_cache_persists_across_reopen(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    cache = ResponseCache(path)
    model = FakeModel(lambda r: Completion(text="persisted", usage=Usage(
        prompt_tokens=7, completion_tokens=2, calls=1),
        tool_calls=[{"id": "c1", "type": "function",
                     "function": {"name": "f", "arguments": "{}"}}]))
    asyncio.run(make_client(model, cache=cache).complete(MSGS, stage="rollout"))
    cache.close()

    reopened = ResponseCache(path)
    offline = FakeModel(lambda r: ModelError("fatal", "must not be called"))
    got = asyncio.run(make_client(offline, cache=reopened).complete(MSGS, stage="rollout"))
    assert offline.requests == []
    assert got.text == "persisted" and got.cached is True
    assert got.usage == Usage(prompt_tokens=7, completion_tokens=2, calls=1)
    assert got.tool_calls[0]["function"]["name"] == "f"
    assert len(reopened) == 1
    reopened.close()


# -- retries and failures ----------------------------------------------------------------------


def test_retries_retryable_errors_then_succeeds(tmp_path):
    model = scripted(ModelError("server_error", "502"), ModelError("rate_limit", "slow down"),
                     ModelError("timeout", "late"), "finally")
    cache = ResponseCache(tmp_path / "c.sqlite")
    client = make_client(model, cache=cache)
    got = asyncio.run(client.complete(MSGS, stage="rollout"))
    assert got.text == "finally"
    assert len(model.requests) == 4
    assert client.meter.retries == Counter({"server_error": 1, "rate_limit": 1, "timeout": 1})
    assert not client.meter.failures
    assert len(cache) == 1
    assert client.meter.billed["target"].calls == 1  # one logical call billed once


def test_non_retryable_error_raises_at_once():
    model = scripted(ModelError("http_error", "HTTP 400: bad request"), "never")
    client = make_client(model)
    with pytest.raises(ModelError) as info:
        asyncio.run(client.complete(MSGS, stage="rollout"))
    assert info.value.kind == "http_error"
    assert len(model.requests) == 1
    assert not client.meter.retries
    assert client.meter.failures == Counter({"http_error": 1})


def test_failure_after_all_retries_is_counted_and_not_cached(tmp_path):
    model = FakeModel(lambda r: ModelError("server_error", "down"))
    cache = ResponseCache(tmp_path / "c.sqlite")
    client = make_client(model, cache=cache,
                         settings=CallSettings(retries=2, backoff_s=0.001, max_backoff_s=0.002))
    with pytest.raises(ModelError) as info:
        asyncio.run(client.complete(MSGS, stage="rollout"))
    assert info.value.kind == "server_error" and info.value.retryable
    assert len(model.requests) == 3
    assert client.meter.retries == Counter({"server_error": 2})
    assert client.meter.failures == Counter({"server_error": 1})
    assert len(cache) == 0
    assert client.meter.usage == {}


def test_request_carries_settings_and_extra_body():
    model = FakeModel(lambda r: "ok")
    settings = CallSettings(temperature=0.2, max_tokens=77, seed=5,
                            extra_body={"cache_prompt": False})
    client = make_client(model, settings=settings)
    asyncio.run(client.complete(MSGS, stage="rollout", max_tokens=9,
                                tools=[{"type": "function", "function": {"name": "f"}}]))
    req = model.requests[0]
    assert req["messages"] == MSGS and req["temperature"] == 0.2
    assert req["max_tokens"] == 9 and req["seed"] == 5
    assert req["extra_body"] == {"cache_prompt": False}
    assert req["tools"][0]["function"]["name"] == "f"
    assert "response_format" not in req
    assert "seed" not in make_client(FakeModel(lambda r: "ok"),
                                     settings=CallSettings(seed=None))._request(
        MSGS, None, None, None, None)


# -- structured output -------------------------------------------------------------------------


def test_structured_valid_json_parses_and_request_names_the_schema():
    model = scripted('{"value": 4, "reason": "2+2"}')
    client = make_client(model, role="optimizer")
    got = asyncio.run(client.structured(MSGS, Answer, stage="reflect"))
    assert got == Answer(value=4, reason="2+2")
    fmt = model.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Answer"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"value", "reason"}


def test_structured_accepts_a_code_fenced_reply():
    model = scripted('```json\n{"value": 1, "reason": "r"}\n```')
    got = asyncio.run(make_client(model).structured(MSGS, Answer, stage="reflect"))
    assert got.value == 1 and len(model.requests) == 1


def test_structured_invalid_then_valid_sends_a_corrective_message():
    model = scripted("I think the value is 4", '{"value": 4, "reason": "fixed"}')
    client = make_client(model)
    got = asyncio.run(client.structured(MSGS, Answer, stage="reflect"))
    assert got.reason == "fixed"
    assert len(model.requests) == 2
    retry = model.requests[1]["messages"]
    assert retry[: len(MSGS)] == MSGS
    assert retry[-2] == {"role": "assistant", "content": "I think the value is 4"}
    assert retry[-1]["role"] == "user"
    assert "not valid" in retry[-1]["content"] and "JSON" in retry[-1]["content"]
    assert model.requests[1]["response_format"]["json_schema"]["name"] == "Answer"
    assert not client.meter.failures


def test_structured_invalid_twice_is_an_invalid_output_failure():
    model = scripted('{"value": "four", "reason": "x"}', '{"reason": "still no value"}')
    client = make_client(model)
    with pytest.raises(ModelError) as info:
        asyncio.run(client.structured(MSGS, Answer, stage="reflect"))
    assert info.value.kind == "invalid_output" and not info.value.retryable
    assert "Answer" in str(info.value) and "value" in str(info.value)
    assert "value" in model.requests[1]["messages"][-1]["content"]  # the first error is named
    assert len(model.requests) == 2
    assert client.meter.failures == Counter({"invalid_output": 1})


def test_structured_endpoint_failure_is_counted_once():
    model = FakeModel(lambda r: ModelError("http_error", "HTTP 422"))
    client = make_client(model)
    with pytest.raises(ModelError, match="http_error"):
        asyncio.run(client.structured(MSGS, Answer, stage="reflect"))
    assert client.meter.failures == Counter({"http_error": 1})


# -- replay ------------------------------------------------------------------------------------


def test_replay_serves_hits_and_raises_on_a_miss(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    asyncio.run(make_client(FakeModel(lambda r: "recorded"), cache=cache).complete(
        MSGS, stage="rollout"))

    live = FakeModel(lambda r: "live")
    replay = make_client(live, cache=cache, replay=True)
    assert asyncio.run(replay.complete(MSGS, stage="rollout")).text == "recorded"
    with pytest.raises(ReplayMiss) as info:
        asyncio.run(replay.complete(MSGS, stage="rollout", sample=3))
    assert "target/rollout" in str(info.value) and "sample 3" in str(info.value)
    with pytest.raises(ReplayMiss, match="5\\+5"):
        asyncio.run(replay.complete([{"role": "user", "content": "5+5?"}], stage="rollout"))
    assert live.requests == []


def test_replay_without_cache_always_misses():
    live = FakeModel(lambda r: "live")
    with pytest.raises(ReplayMiss):
        asyncio.run(make_client(live, replay=True).complete(MSGS, stage="rollout"))
    assert live.requests == []


# -- meter -------------------------------------------------------------------------------------


def fixed(prompt: int, completion: int):
    return FakeModel(lambda r: Completion(text="ok", usage=Usage(
        prompt_tokens=prompt, completion_tokens=completion, calls=1)), name="gpt-4o-mini")


def test_meter_usage_per_role_and_stage(tmp_path):
    meter = Meter()
    cache = ResponseCache(tmp_path / "c.sqlite")
    target = make_client(fixed(100, 10), cache=cache, meter=meter, role="target")
    optimizer = make_client(fixed(1000, 200), cache=cache, meter=meter, role="optimizer")

    async def go():
        await target.complete(MSGS, stage="rollout")
        await target.complete(MSGS, stage="rollout")  # the same request again: a cache hit
        await target.complete(MSGS, stage="gate", sample=1)
        await optimizer.complete(MSGS, stage="reflect", sample=2)

    asyncio.run(go())
    # a distinct request counts once in usage, however often it is asked within the run
    assert meter.usage[("target", "rollout")] == Usage(prompt_tokens=100, completion_tokens=10,
                                                       calls=1)
    assert meter.usage[("target", "gate")].calls == 1
    assert meter.usage[("optimizer", "reflect")] == Usage(prompt_tokens=1000,
                                                          completion_tokens=200, calls=1)
    assert meter.by_role()["target"] == Usage(prompt_tokens=200, completion_tokens=20, calls=2)
    assert meter.total().calls == 3
    assert meter.billed["target"] == Usage(prompt_tokens=200, completion_tokens=20, calls=2)
    assert meter.cache_hits == 1
    assert meter.models == {"target": "gpt-4o-mini", "optimizer": "gpt-4o-mini"}
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    assert meter.billed_cost() == pytest.approx((1200 * 0.15 + 220 * 0.60) / 1e6)
    assert meter.total_cost() == pytest.approx(meter.billed_cost())
    summary = meter.summary()
    assert summary["stages"]["target/rollout"]["calls"] == 1
    assert summary["roles"]["optimizer"]["calls"] == 1
    assert summary["billed"]["target"]["calls"] == 2 and summary["cache_hits"] == 1


def test_cached_calls_count_in_usage_but_are_not_billed(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    first = Meter()
    asyncio.run(make_client(fixed(100, 10), cache=cache, meter=first).complete(
        MSGS, stage="rollout"))
    assert first.billed["target"].calls == 1

    resumed = Meter()  # e.g. a resumed run reading the same cache
    offline = FakeModel(lambda r: ModelError("fatal", "must not be called"), name="gpt-4o-mini")
    got = asyncio.run(make_client(offline, cache=cache, meter=resumed).complete(
        MSGS, stage="rollout"))
    assert got.cached and offline.requests == []
    assert resumed.usage[("target", "rollout")] == Usage(prompt_tokens=100,
                                                         completion_tokens=10, calls=1)
    assert resumed.billed == {} and resumed.billed_cost() == 0.0
    assert resumed.total_cost() == pytest.approx((100 * 0.15 + 10 * 0.60) / 1e6)
    assert resumed.cache_hits == 1


ONE = Usage(prompt_tokens=10, completion_tokens=5, calls=1)


def test_budget_check_raises_at_the_limit():
    meter = Meter(limits=Limits(max_calls=2))
    meter.record("k1", "target", "rollout", "m", ONE, cached=False)
    meter.check()
    meter.record("k2", "target", "rollout", "m", ONE, cached=True)  # cache hits are free
    meter.check()
    meter.record("k3", "optimizer", "reflect", "m", ONE, cached=False)
    with pytest.raises(BudgetExceeded, match=r"call limit reached \(2 >= 2\)"):
        meter.check()


def test_repeated_sends_of_one_request_are_all_billed():
    meter = Meter(limits=Limits(max_calls=2))
    meter.record("k1", "target", "rollout", "m", ONE, cached=False)
    meter.record("k1", "target", "rollout", "m", ONE, cached=False)
    assert meter.usage[("target", "rollout")].calls == 1
    assert meter.billed["target"].calls == 2
    with pytest.raises(BudgetExceeded):
        meter.check()


def test_token_and_cost_limits():
    tokens = Meter(limits=Limits(max_tokens=100))
    tokens.record("a", "t", "s", "m", Usage(prompt_tokens=60, completion_tokens=39, calls=1),
                  cached=False)
    tokens.check()
    tokens.record("b", "t", "s", "m", Usage(prompt_tokens=1, calls=1), cached=False)
    with pytest.raises(BudgetExceeded, match="token limit"):
        tokens.check()

    cost = Meter(limits=Limits(max_cost=1.0), prices={"pricey": (1_000_000.0, 0.0)})
    cost.record("a", "t", "s", "pricey", Usage(prompt_tokens=0, calls=1), cached=False)
    cost.check()
    cost.record("b", "t", "s", "pricey", Usage(prompt_tokens=1, calls=1), cached=False)
    with pytest.raises(BudgetExceeded, match="cost limit"):
        cost.check()


def test_meter_state_restores_counts():
    meter = Meter()
    meter.record("k1", "target", "rollout", "m", ONE, cached=False)
    meter.failures["timeout"] += 2
    meter.retries["rate_limit"] += 1
    meter.cache_hits = 4
    other = Meter()
    other.restore(json.loads(json.dumps(meter.state())))
    assert other.summary() == meter.summary()


def test_meter_ledger_restores_usage_and_seen_requests(tmp_path):
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    meter = Meter(ledger=db)
    meter.record("k1", "target", "rollout", "gpt-4o", ONE, cached=False)
    meter.record("k1", "target", "rollout", "gpt-4o", ONE, cached=True)
    meter.record("k2", "optimizer", "reflect", "gpt-4o-mini",
                 Usage(prompt_tokens=100, completion_tokens=50, calls=1), cached=False)
    state = json.loads(json.dumps(meter.state()))
    stale = {**state, "usage": []}  # a checkpoint written before the calls: the ledger wins
    db.close()

    db2 = sqlite3.connect(path, isolation_level=None)
    restored = Meter(ledger=db2)
    restored.restore(stale)
    assert restored.usage == meter.usage
    assert restored.total_cost() == pytest.approx(meter.total_cost())
    restored.record("k1", "target", "rollout", "gpt-4o", ONE, cached=True)  # seen before
    assert restored.usage == meter.usage
    restored.record("k3", "target", "rollout", "gpt-4o", ONE, cached=True)
    assert restored.usage[("target", "rollout")].calls == 2
    db2.close()


def test_price_lookup():
    meter = Meter(prices={"my-model": (1.0, 2.0), "gpt-4o": (9.0, 9.0)})
    assert meter.price("gpt-4o-mini") == (0.15, 0.60)
    assert meter.price("openai:gpt-4o-mini") == (0.15, 0.60)
    assert meter.price("openrouter:openai/gpt-4.1") == (2.00, 8.00)
    assert meter.price("gpt-4o") == (9.0, 9.0)  # the config overrides the defaults
    assert meter.price("openai:my-model") == (1.0, 2.0)
    assert meter.price("local:0.5b") == (0.0, 0.0)


# -- OpenAIModel over real HTTP ----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    mode = "ok"
    bodies: list[dict] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        type(self).bodies.append({"path": self.path, "body": body})
        mode = type(self).mode
        if mode == "ok":
            status, payload = 200, {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "Four."}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
            }
        elif mode == "empty":
            status, payload = 200, {
                "id": "chatcmpl-2", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": ""}}],
            }
        elif mode == "garbled":
            status, payload = 200, None
        else:
            status = int(mode)
            payload = {"error": {"message": f"status {status}", "type": "test", "code": None}}
        data = b'{"id": "chatcmpl-3", "choi' if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def http_server(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    _Handler.mode, _Handler.bodies = "ok", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_openai_model_over_http(http_server):
    model = OpenAIModel("tiny-model", base_url=http_server, api_key="k", timeout=5,
                        extra_body={"cache_prompt": False})
    request = {"messages": MSGS, "temperature": 0.0, "max_tokens": 8, "seed": 0,
               "extra_body": {"top_k": 1}}

    async def call(mode):
        _Handler.mode = mode
        try:
            return await model.complete(request)
        except ModelError as exc:
            return exc

    async def go():
        try:
            modes = ("ok", "500", "429", "401", "400", "empty", "garbled")
            return [await call(m) for m in modes]
        finally:
            await model.aclose()

    ok, e500, e429, e401, e400, empty, garbled = asyncio.run(go())
    assert isinstance(ok, Completion) and ok.text == "Four."
    assert ok.usage == Usage(prompt_tokens=11, completion_tokens=3, calls=1)
    assert ok.tool_calls == []
    assert [e.kind for e in (e500, e429, e401, e400, empty, garbled)] == [
        "server_error", "rate_limit", "fatal", "http_error", "empty_reply", "bad_response"]
    assert all(e.retryable for e in (e500, e429, empty, garbled))
    assert not any(e.retryable for e in (e401, e400))
    assert "tiny-model" in str(e401)

    first = _Handler.bodies[0]
    assert first["path"] == "/v1/chat/completions"
    body = first["body"]
    assert body["model"] == "tiny-model" and body["messages"] == MSGS
    assert body["max_tokens"] == 8 and body["seed"] == 0
    assert body["cache_prompt"] is False and body["top_k"] == 1  # extra_body fields merged in
    assert "extra_body" not in body
    assert len(_Handler.bodies) == 7  # the SDK's own retries are off
    assert request["extra_body"] == {"top_k": 1}  # the caller's request is not mutated


def test_role_client_retries_a_real_500(http_server):
    model = OpenAIModel("tiny-model", base_url=http_server, api_key="k", timeout=5)
    client = make_client(model)
    _Handler.mode = "500"

    async def go():
        try:
            return await client.complete(MSGS, stage="rollout")
        except ModelError as exc:
            return exc
        finally:
            await model.aclose()

    client.settings = CallSettings(retries=1, backoff_s=0.001, max_backoff_s=0.002)
    err = asyncio.run(go())
    assert isinstance(err, ModelError) and err.kind == "server_error"
    assert len(_Handler.bodies) == 2
    assert client.meter.retries == Counter({"server_error": 1})
    assert client.meter.failures == Counter({"server_error": 1})
