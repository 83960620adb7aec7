"""Replies cut at the token limit (finish reason "length"): a structured call retries once with a
larger limit instead of the corrective retry that could never succeed, a reply cut twice is a
"truncated" failure naming the limit, and each role gets a reply limit that fits what it writes.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from e2e.conftest import ScriptedServer
from pydantic import BaseModel
from scripted import META_NOTES

from skilltrain.config import ModelConfig, TrainConfig, merge_overrides, parse_config
from skilltrain.models.base import Completion, ModelError
from skilltrain.models.cache import ResponseCache
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.fake import FakeModel
from skilltrain.models.meter import Meter
from skilltrain.models.openai_compat import OpenAIModel
from skilltrain.records import Usage

MSGS = [{"role": "user", "content": "Summarise the failures."}]
VALID = json.dumps({"notes": "keep answers short", "count": 3})
CUT = VALID[: len(VALID) // 2]


class MetaReply(BaseModel):
    """Named like the optimizer's schema, so the scripted server answers it."""

    notes: str
    count: int = 0


def settings(max_tokens: int, cap: int = 8192) -> CallSettings:
    return CallSettings(max_tokens=max_tokens, max_tokens_cap=cap, backoff_s=0.001,
                        max_backoff_s=0.002)


def cut_below(threshold: int, *, text: str = VALID) -> FakeModel:
    """A model that runs out of tokens when the request allows fewer than `threshold`."""

    def respond(request: dict) -> Completion:
        usage = Usage(prompt_tokens=10, completion_tokens=request["max_tokens"], calls=1)
        if request["max_tokens"] < threshold:
            return Completion(text=text[: len(text) // 2], usage=usage, finish_reason="length")
        return Completion(text=text, usage=usage, finish_reason="stop")

    return FakeModel(respond)


def optimizer(model, max_tokens: int = 600, *, cap: int = 8192, cache=None, meter=None,
              replay: bool = False) -> RoleClient:
    return RoleClient(model, "optimizer", meter or Meter(), cache=cache,
                      settings=settings(max_tokens, cap), replay=replay)


# -- the growth retry ---------------------------------------------------------------------------


def test_cut_reply_is_retried_once_with_twice_the_limit():
    model = cut_below(1000)
    client = optimizer(model, 600)
    got = asyncio.run(client.structured(MSGS, MetaReply, stage="reflect"))
    assert got == MetaReply(notes="keep answers short", count=3)
    assert [r["max_tokens"] for r in model.requests] == [600, 1200]
    assert model.requests[1]["messages"] == model.requests[0]["messages"]  # no "not valid" turn
    assert client.meter.retries == Counter({"length": 1})
    assert not client.meter.failures


def test_cut_twice_is_a_truncated_failure_that_names_the_limit():
    model = cut_below(10_000)
    client = optimizer(model, 600)
    with pytest.raises(ModelError) as info:
        asyncio.run(client.structured(MSGS, MetaReply, stage="reflect"))
    err = info.value
    assert err.kind == "truncated" and not err.retryable
    assert "1200" in err.message and "optimizer.max_tokens" in err.message
    assert [r["max_tokens"] for r in model.requests] == [600, 1200]
    assert client.meter.failures == Counter({"truncated": 1})
    assert client.meter.retries == Counter({"length": 1})
    assert client.meter.summary()["infra_failures"] == {"truncated": 1}


def test_growth_is_capped_and_a_limit_at_the_cap_fails_at_once():
    model = cut_below(10_000)
    with pytest.raises(ModelError, match="truncated"):
        asyncio.run(optimizer(model, 3000, cap=4096).structured(MSGS, MetaReply, stage="s"))
    assert [r["max_tokens"] for r in model.requests] == [3000, 4096]

    model = cut_below(10_000)
    client = optimizer(model, 4096, cap=4096)
    with pytest.raises(ModelError) as info:
        asyncio.run(client.structured(MSGS, MetaReply, stage="s"))
    assert info.value.kind == "truncated" and "4096" in info.value.message
    assert [r["max_tokens"] for r in model.requests] == [4096]
    assert not client.meter.retries and client.meter.failures == Counter({"truncated": 1})


def test_an_explicit_call_limit_is_the_one_that_grows():
    model = cut_below(500)
    asyncio.run(optimizer(model, 2048).structured(MSGS, MetaReply, stage="s", max_tokens=300))
    assert [r["max_tokens"] for r in model.requests] == [300, 600]


def test_cut_reply_that_validates_is_accepted():
    model = FakeModel(lambda r: Completion(text=VALID, finish_reason="length"))
    client = optimizer(model)
    got = asyncio.run(client.structured(MSGS, MetaReply, stage="s"))
    assert got.count == 3
    assert len(model.requests) == 1
    assert not client.meter.retries and not client.meter.failures


def test_invalid_but_complete_reply_still_gets_the_corrective_retry():
    replies = [Completion(text='{"count": 1}', finish_reason="stop"),
               Completion(text=VALID, finish_reason="stop")]
    model = FakeModel(lambda r: replies.pop(0))
    client = optimizer(model)
    asyncio.run(client.structured(MSGS, MetaReply, stage="s"))
    assert "not valid" in model.requests[1]["messages"][-1]["content"]
    assert [r["max_tokens"] for r in model.requests] == [600, 600]
    assert not client.meter.retries


def test_grown_reply_that_is_invalid_is_corrected_at_the_grown_limit():
    replies = [Completion(text=CUT, finish_reason="length"),
               Completion(text='{"count": 1}', finish_reason="stop"),
               Completion(text=VALID, finish_reason="stop")]
    model = FakeModel(lambda r: replies.pop(0))
    client = optimizer(model)
    assert asyncio.run(client.structured(MSGS, MetaReply, stage="s")).count == 3
    assert [r["max_tokens"] for r in model.requests] == [600, 1200, 1200]
    assert "not valid" in model.requests[2]["messages"][-1]["content"]


def test_plain_completion_cut_at_the_limit_is_the_answer():
    model = cut_below(1000, text="The answer is forty-two.")
    client = RoleClient(model, "target", Meter(), settings=settings(100))
    got = asyncio.run(client.complete(MSGS, stage="rollout"))
    assert got.finish_reason == "length" and got.text == "The answer i"
    assert len(model.requests) == 1 and not client.meter.retries


# -- cache ------------------------------------------------------------------------------------


def test_cached_completions_keep_finish_reason_and_replay_the_growth(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    model = cut_below(1000)
    asyncio.run(optimizer(model, cache=cache).structured(MSGS, MetaReply, stage="s"))
    assert len(cache) == 2

    offline = FakeModel(lambda r: ModelError("fatal", "must not be called"))
    replayed = optimizer(offline, cache=cache, replay=True)
    assert asyncio.run(replayed.structured(MSGS, MetaReply, stage="s")).count == 3
    assert offline.requests == [] and replayed.meter.cache_hits == 2

    hit = asyncio.run(optimizer(offline, cache=cache)._raw(model.requests[0], "s", 0))
    assert hit.cached and hit.finish_reason == "length"
    cache.close()


def test_old_cache_entries_without_finish_reason_load():
    old = {"text": "hi", "usage": Usage(calls=1).model_dump(), "tool_calls": []}
    assert Completion.from_json(old).finish_reason is None
    c = Completion(text="x", finish_reason="length")
    assert Completion.from_json(json.loads(json.dumps(c.to_json()))).finish_reason == "length"


# -- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def short_server(tmp_path):
    """The scripted server, cutting every reply whose request allows under 1024 tokens."""
    server = ScriptedServer(tmp_path, "good", ["--length-below", "1024"])
    yield server
    server.stop()


def test_growth_retry_over_http(short_server):
    async def go():
        model = OpenAIModel("scripted-opt", base_url=short_server.base_url, api_key="sk-test")
        try:
            client = optimizer(model, 600)
            reply = await client.structured(MSGS, MetaReply, stage="reflect")
            question = [{"role": "user", "content": "What is 2 plus 3?"}]
            plain = await client.complete(question, stage="rollout", max_tokens=2000)
            return client, reply, plain
        finally:
            await model.aclose()

    client, reply, plain = asyncio.run(go())
    assert reply.notes == META_NOTES
    sent = [r for r in short_server.requests() if r.get("response_format")]
    assert [r["max_tokens"] for r in sent] == [600, 1200]
    assert client.meter.retries == Counter({"length": 1}) and not client.meter.failures
    assert plain.finish_reason == "stop" and plain.text == "The answer is 5."


# -- role defaults ------------------------------------------------------------------------------


def test_role_defaults_fit_each_role():
    cfg = TrainConfig()
    assert cfg.target.max_tokens == 512 and cfg.optimizer.max_tokens == 2048
    cfg = parse_config({"target": {"model": "t"}, "optimizer": {"model": "x"}})
    assert cfg.target.max_tokens == 512 and cfg.optimizer.max_tokens == 2048
    cfg = parse_config({"optimizer": {"temperature": 0.3}})
    assert cfg.optimizer.model == "local:1.5b" and cfg.optimizer.max_tokens == 2048


def test_explicit_max_tokens_is_kept_and_overrides_apply():
    cfg = parse_config({"target": {"model": "t", "max_tokens": 64},
                        "optimizer": {"model": "x", "max_tokens": 4096}})
    assert cfg.target.max_tokens == 64 and cfg.optimizer.max_tokens == 4096
    cfg = merge_overrides(TrainConfig(), {"optimizer.max_tokens": 1024}, "cli")
    assert cfg.optimizer.max_tokens == 1024 and cfg.target.max_tokens == 512


def test_one_model_config_for_both_roles_gets_each_default_and_is_not_changed():
    shared = ModelConfig(model="m")
    cfg = TrainConfig(target=shared, optimizer=shared)
    assert cfg.target.max_tokens == 512 and cfg.optimizer.max_tokens == 2048
    assert shared.max_tokens is None
    cfg.optimizer = ModelConfig(model="n")
    assert cfg.optimizer.max_tokens == 2048
