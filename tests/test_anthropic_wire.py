"""The native Claude backend's translation, both ways, and what prompt-cache tokens cost."""

from __future__ import annotations

import json
import sqlite3

import pytest

from skilltrain.models.anthropic_wire import (
    ASK_FOR_TOOL,
    Capabilities,
    capabilities,
    from_anthropic,
    to_anthropic,
    usage_of,
)
from skilltrain.models.base import Completion, ModelError
from skilltrain.models.meter import Meter
from skilltrain.models.prices import rates
from skilltrain.records import Usage

SKILL = "# Adding\nAdd the two numbers."
SCHEMA = {"type": "object", "properties": {"value": {"type": "integer"}}, "required": ["value"]}


def request(**extra):
    return {"messages": [{"role": "system", "content": SKILL},
                         {"role": "user", "content": "What is 2 plus 3?"}],
            "temperature": 0.0, "max_tokens": 512, "seed": 0, **extra}


def structured(**extra):
    return request(response_format={"type": "json_schema",
                                    "json_schema": {"name": "Answer", "schema": SCHEMA}}, **extra)


# -- requests ----------------------------------------------------------------------------------


def test_system_prompt_is_a_cached_block_and_seed_is_not_sent():
    sent = to_anthropic(request(), "claude-haiku-4-5", Capabilities())
    kw = sent.kwargs
    assert kw["system"] == [{"type": "text", "text": SKILL, "cache_control": {"type": "ephemeral"}}]
    assert kw["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is 2 plus 3?"}]}]
    assert kw["model"] == "claude-haiku-4-5" and kw["max_tokens"] == 512
    assert sent.extra == {"temperature": 0.0} and sent.sampled  # the SDK takes it as extra_body
    assert not {"temperature", "seed", "tools", "thinking"} & kw.keys()


def test_only_the_last_system_block_carries_the_cache_breakpoint():
    req = request()
    req["messages"].insert(0, {"role": "system", "content": "Notes from earlier epochs"})
    system = to_anthropic(req, "claude-haiku-4-5", Capabilities()).kwargs["system"]
    assert [b["text"] for b in system] == ["Notes from earlier epochs", SKILL]
    assert "cache_control" not in system[0] and system[1]["cache_control"] == {"type": "ephemeral"}


def test_tool_conversation_becomes_tool_use_and_merged_tool_results():
    req = request(tools=[{"type": "function", "function": {
        "name": "run_python", "description": "run code",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}}}}])
    req["messages"] += [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "run_python", "arguments": '{"code": "print(2+3)"}'}},
            {"id": "c2", "type": "function", "function": {"name": "run_python",
                                                          "arguments": "not json"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "5"},
        {"role": "tool", "tool_call_id": "c2", "content": "SyntaxError"},
    ]
    kw = to_anthropic(req, "claude-haiku-4-5", Capabilities()).kwargs
    assert kw["tools"] == [{"name": "run_python", "description": "run code", "input_schema": {
        "type": "object", "properties": {"code": {"type": "string"}}}}]
    user, assistant, results = kw["messages"]
    assert [b["type"] for b in assistant["content"]] == ["text", "tool_use", "tool_use"]
    assert assistant["content"][1]["input"] == {"code": "print(2+3)"}
    assert assistant["content"][2]["input"] == {"arguments": "not json"}  # kept, as an object
    assert results["role"] == "user" and [b["tool_use_id"] for b in results["content"]] == \
        ["c1", "c2"]
    assert "tool_choice" not in kw


def test_structured_request_forces_the_schema_tool():
    sent = to_anthropic(structured(), "claude-haiku-4-5", Capabilities())
    assert sent.kwargs["tools"][-1]["name"] == "Answer"
    assert sent.kwargs["tools"][-1]["input_schema"] == SCHEMA
    assert sent.kwargs["tool_choice"] == {"type": "tool", "name": "Answer"}
    assert sent.forced and sent.schema_tool == "Answer"
    assert len(sent.kwargs["system"]) == 1  # no instruction needed when the tool is forced


def test_thinking_asks_for_the_tool_instead_of_forcing_it_and_sends_no_temperature():
    sent = to_anthropic(structured(), "claude-sonnet-4-5", Capabilities(), thinking_budget=2048)
    kw = sent.kwargs
    assert kw["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert kw["max_tokens"] == 512 + 2048  # the budget comes on top of the reply's limit
    assert kw["tool_choice"] == {"type": "auto"} and not sent.forced
    assert sent.extra == {} and not sent.sampled
    # the instruction comes after the cached block, which stays the skill itself
    assert kw["system"][0]["text"] == SKILL and "cache_control" in kw["system"][0]
    assert kw["system"][1]["text"] == ASK_FOR_TOOL.format(name="Answer")


def test_models_that_refuse_settings_do_not_get_them():
    sent = to_anthropic(structured(), "claude-sonnet-5-5", capabilities("claude-sonnet-5-5"))
    assert sent.extra == {} and not sent.sampled
    assert sent.kwargs["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize("model, sampling, forced, budget", [
    ("claude-haiku-4-5", True, True, True),
    ("claude-sonnet-4-5-20250929", True, True, True),
    ("claude-sonnet-4-20250514", True, True, True),
    ("claude-3-5-haiku-20241022", True, True, True),
    ("claude-opus-4-6", True, True, True),
    ("claude-opus-4-7", False, True, False),
    ("claude-sonnet-5", False, True, False),
    ("claude-opus-5-5", False, False, False),
    ("claude-sonnet-5-5", False, False, False),
    ("claude-fable-5-1", False, False, False),
    ("local:0.5b", True, True, True),  # llama.cpp's /v1/messages: everything goes
    ("scripted-target", True, True, True),
])
def test_capabilities_follow_the_documented_generations(model, sampling, forced, budget):
    caps = capabilities(model)
    assert (caps.sampling, caps.forced_tool, caps.budget_thinking) == (sampling, forced, budget)


# -- replies -----------------------------------------------------------------------------------


def message(content, stop="end_turn", **usage):
    return {"id": "msg_1", "type": "message", "role": "assistant", "content": content,
            "stop_reason": stop, "usage": {"input_tokens": 10, "output_tokens": 4, **usage}}


def test_schema_tool_input_is_the_reply_text():
    sent = to_anthropic(structured(), "claude-haiku-4-5", Capabilities())
    done = from_anthropic(message([{"type": "tool_use", "id": "t", "name": "Answer",
                                    "input": {"value": 5}}], stop="tool_use"), sent)
    assert json.loads(done.text) == {"value": 5}
    assert done.tool_calls == [] and done.finish_reason == "stop"


def test_a_forced_call_written_as_text_is_read_from_its_first_json_object():
    # llama.cpp's /v1/messages with the 0.5B: the call as text, then junk up to the limit
    sent = to_anthropic(structured(), "local:0.5b", Capabilities())
    junk = '{"name": "Answer", "arguments": {"value": 5}}.0000001}0000001}00'
    done = from_anthropic(message([{"type": "text", "text": junk}], stop="max_tokens"), sent)
    assert json.loads(done.text) == {"value": 5}
    bare = from_anthropic(message([{"type": "text", "text": 'ok: {"value": 7} done'}]), sent)
    assert json.loads(bare.text) == {"value": 7}
    other = from_anthropic(message([{"type": "text", "text": '{"name": "Answer"}'}]), sent)
    assert other.text == '{"name": "Answer"}'  # no input in it: left for the client to refuse
    prose = from_anthropic(message([{"type": "text", "text": "no JSON here"}]), sent)
    assert prose.text == "no JSON here"  # left for the client's corrective retry


def test_a_cut_structured_reply_reads_as_length_so_the_client_grows_the_limit():
    sent = to_anthropic(structured(), "claude-haiku-4-5", Capabilities())
    cut = from_anthropic(message([{"type": "tool_use", "id": "t", "name": "Answer",
                                   "input": {}}], stop="max_tokens"), sent)
    assert cut.text == "{}" and cut.finish_reason == "length"
    empty = from_anthropic(message([{"type": "thinking", "thinking": "...", "signature": "s"}],
                                   stop="max_tokens"), sent)
    assert empty.text == "" and empty.finish_reason == "length"


def test_thinking_is_not_the_answer_but_goes_back_with_the_tool_call():
    sent = to_anthropic(request(), "claude-sonnet-4-5", Capabilities(), thinking_budget=1024)
    think = {"type": "thinking", "thinking": "2+3...", "signature": "sig"}
    done = from_anthropic(message([think, {"type": "text", "text": "Running it."},
                                   {"type": "tool_use", "id": "c1", "name": "run_python",
                                    "input": {"code": "print(5)"}}], stop="tool_use"), sent)
    assert done.text == "Running it." and done.finish_reason == "tool_calls"
    assert json.loads(done.tool_calls[0]["function"]["arguments"]) == {"code": "print(5)"}
    nxt = request()
    nxt["messages"] += [{"role": "assistant", "content": done.text,
                         "tool_calls": done.tool_calls},
                        {"role": "tool", "tool_call_id": "c1", "content": "5"}]
    turn = to_anthropic(nxt, "claude-sonnet-4-5", Capabilities(), 1024).kwargs["messages"][1]
    assert turn["content"][0] == think and turn["content"][-1]["type"] == "tool_use"


def test_empty_and_refused_replies_are_infrastructure_failures():
    sent = to_anthropic(request(), "claude-haiku-4-5", Capabilities())
    with pytest.raises(ModelError) as empty:
        from_anthropic(message([]), sent)
    assert empty.value.kind == "empty_reply" and empty.value.retryable
    with pytest.raises(ModelError) as refused:
        from_anthropic(message([], stop="refusal"), sent)
    assert refused.value.kind == "invalid_output" and not refused.value.retryable


def test_usage_counts_cache_tokens_as_part_of_the_prompt():
    u = usage_of({"input_tokens": 20, "output_tokens": 7, "cache_creation_input_tokens": 300,
                  "cache_read_input_tokens": 1000})
    assert u == Usage(prompt_tokens=1320, completion_tokens=7, calls=1, cache_read_tokens=1000,
                      cache_write_tokens=300)
    assert usage_of({"input_tokens": 5, "output_tokens": 1}).cache_read_tokens == 0


# -- usage records and cost --------------------------------------------------------------------


def test_usage_adds_cache_fields_and_old_records_still_load():
    a = Usage(prompt_tokens=10, cache_read_tokens=4, cache_write_tokens=1, calls=1)
    b = Usage(prompt_tokens=5, cache_read_tokens=2, calls=1)
    assert a + b == Usage(prompt_tokens=15, calls=2, cache_read_tokens=6, cache_write_tokens=1)
    old = Completion.from_json({"text": "x", "usage": {"prompt_tokens": 3,
                                                       "completion_tokens": 1, "calls": 1}})
    assert old.usage.cache_read_tokens == 0 and old.usage.cache_write_tokens == 0


def test_prices_find_claude_rates_and_apply_the_cache_multipliers():
    assert rates("anthropic:claude-sonnet-4-5") == (3.0, 15.0, 3.75, 0.30)
    assert rates("anthropic:claude-sonnet-4-5-20250929+thinking=2048") == (3.0, 15.0, 3.75, 0.30)
    assert rates("claude-opus-5-5") == (4.0, 20.0, 5.0, 0.20)  # reads at 0.05x, not 0.1x
    # a two-number override behind anthropic: gets Anthropic's 1.25x / 0.1x
    assert rates("anthropic:my-claude", {"my-claude": (2.0, 8.0)}) == \
        pytest.approx((2.0, 8.0, 2.5, 0.2))
    assert rates("anthropic:claude-haiku-4-5", {"claude-haiku-4-5": (1, 2, 3, 4)}) == (1, 2, 3, 4)
    # no known discount elsewhere: cache tokens cost what input costs
    assert rates("openai:gpt-4o") == (2.5, 10.0, 2.5, 2.5)
    assert rates("local:0.5b") == (0.0, 0.0, 0.0, 0.0)


def test_cost_bills_cache_reads_and_writes_at_their_rates():
    meter = Meter(models={"target": "anthropic:claude-sonnet-4-5"})
    u = Usage(prompt_tokens=1_000_000 + 2_000_000 + 4_000_000, completion_tokens=1_000_000,
              calls=3, cache_write_tokens=2_000_000, cache_read_tokens=4_000_000)
    # 1M fresh at $3, 2M written at $3.75, 4M read at $0.30, 1M out at $15
    assert meter.cost_of("target", u) == pytest.approx(3 + 7.5 + 1.2 + 15)
    plain = Usage(prompt_tokens=7_000_000, completion_tokens=1_000_000, calls=3)
    assert meter.cost_of("target", plain) == pytest.approx(21 + 15)


def test_ledger_keeps_cache_tokens_across_a_reload_and_old_ledgers_open(tmp_path):
    db = sqlite3.connect(tmp_path / "run.sqlite", isolation_level=None)
    db.execute("CREATE TABLE ledger (key TEXT PRIMARY KEY, role TEXT, stage TEXT, model TEXT, "
               "prompt_tokens INTEGER, completion_tokens INTEGER)")  # a ledger from before
    db.execute("INSERT INTO ledger VALUES ('old', 'target', 'rollout', 'm', 10, 2)")
    meter = Meter(ledger=db)
    assert meter.usage[("target", "rollout")] == Usage(prompt_tokens=10, completion_tokens=2,
                                                       calls=1)
    hit = Usage(prompt_tokens=100, completion_tokens=5, calls=1, cache_read_tokens=90)
    meter.record("new", "target", "rollout", "anthropic:claude-haiku-4-5", hit, cached=False)
    again = Meter(ledger=db)
    assert again.usage[("target", "rollout")].cache_read_tokens == 90
    assert again.billed["target"].cache_read_tokens == 90
    assert again.summary()["prompt_cache"] == {"read_tokens": 90, "write_tokens": 0}
    assert again.summary()["roles"]["target"]["cache_read_tokens"] == 90
    assert "cache_write_tokens" not in again.summary()["roles"]["target"]  # shown when non-zero

