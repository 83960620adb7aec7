"""Our OpenAI-shaped chat requests as Anthropic Messages API requests, and replies back.

Everything above the backends speaks one request shape (RoleClient builds it, the response
cache keys on it), so the native Claude backend translates at the edge, both ways, in plain
functions that need no SDK and no network:

- system messages become `system` text blocks; the last one carries `cache_control:
  ephemeral`, so the long shared prefix (tools, then the skill or the optimizer's prompt) is
  written to Anthropic's prompt cache once and read back at a tenth of the price afterwards;
- assistant tool calls become `tool_use` blocks and `role: tool` results `tool_result` blocks,
  merged into one user turn as the API wants;
- a structured request (`response_format` json_schema) becomes a tool named after the schema
  that the model is made to call; its input is returned as the reply text, so RoleClient's
  pydantic validation and corrective retry work unchanged.

Newer models refuse some of these settings with HTTP 400 (Capabilities, with the docs that say
so): Claude 4.7 and later take no `temperature` and no thinking budget, and Claude Opus 5.5,
Sonnet 5.5 and Fable 5.1 no forced `tool_choice`. Extended thinking forbids forcing a tool and
setting the temperature too. Where forcing is not allowed the schema tool is offered with
`tool_choice: auto` and a system line asking for it; a model that answers in text instead gets
that text validated like any reply (and the one corrective retry).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from skilltrain.models.base import Completion, ModelError
from skilltrain.models.cli_formats import first_json_object
from skilltrain.records import Usage

EPHEMERAL = {"type": "ephemeral"}  # the 5-minute cache, the API's default lifetime
ASK_FOR_TOOL = ("Give your whole reply by calling the `{name}` tool once, with the reply as its "
                "input; write nothing else.")
THINKING_MIN = 1024  # the API's floor for budget_tokens (docs: build-with-claude/extended-thinking)

_VERSION = re.compile(r"claude-(?:([a-z]+)-)?(\d+)(?:-(\d{1,2}))?(?!\d)")
_TOOL_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
         "tool_use": "tool_calls", "refusal": "refusal", "pause_turn": "stop"}


@dataclass
class Capabilities:
    """What a model's Messages endpoint accepts. Known Claude generations are told from the
    model id, per Anthropic's docs (platform.claude.com/docs): `temperature` is refused by
    Claude Opus 4.7 and later ("`temperature` is deprecated for this model", the Opus 4.7 and
    Sonnet 5 migration guides), thinking budgets too ("Claude 4.7 and later models do not
    support it", extended-thinking page), forced tool choice by Opus 5.5, Sonnet 5.5 and Fable
    5.1 (their migration guides). Anything else (older Claude, a proxy, llama.cpp's server)
    starts permissive; AnthropicModel turns a capability off when a 400 names it."""

    sampling: bool = True  # takes `temperature`
    forced_tool: bool = True  # takes `tool_choice: {type: tool}`
    budget_thinking: bool = True  # takes `thinking: {type: enabled, budget_tokens}`


def capabilities(model_id: str) -> Capabilities:
    match = _VERSION.search(model_id)
    if match is None:
        return Capabilities()
    family, version = match.group(1) or "", (int(match.group(2)), int(match.group(3) or 0))
    modern = version >= (4, 7)
    no_forcing = version >= (5, 5) or (family in ("fable", "mythos") and version >= (5, 1))
    return Capabilities(sampling=not modern, forced_tool=not no_forcing,
                        budget_thinking=not modern)


@dataclass
class Translated:
    """The keyword arguments for `messages.create`, the body fields the SDK has no argument for
    (`extra`: since anthropic 1.0 `temperature` goes in extra_body, its migration guide says;
    the API still takes it on the models that sample), and what reading the reply needs."""

    kwargs: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    schema_tool: str | None = None  # the structured reply's tool name
    forced: bool = False  # tool_choice forced that tool
    sampled: bool = False  # temperature was sent


def to_anthropic(request: dict[str, Any], model_id: str, caps: Capabilities,
                 thinking_budget: int | None = None) -> Translated:
    """`request` (RoleClient's body without extra_body) as Messages API arguments. A thinking
    budget is sent on top of max_tokens (the API counts thinking in max_tokens and wants the
    budget below it), so the role's max_tokens stays what its reply may use."""
    system = [{"type": "text", "text": _text(m.get("content"))}
              for m in request["messages"] if m.get("role") == "system"]
    system = [b for b in system if b["text"].strip()]
    if system:
        system[-1]["cache_control"] = dict(EPHEMERAL)
    tools = [_tool(t) for t in request.get("tools") or []]
    kwargs: dict[str, Any] = {"model": model_id, "max_tokens": int(request["max_tokens"]),
                              "messages": _messages(request["messages"])}
    out = Translated(kwargs)
    fmt = request.get("response_format") or {}
    spec = fmt.get("json_schema") if fmt.get("type") == "json_schema" else None
    if spec:
        name = _TOOL_NAME.sub("_", str(spec.get("name") or "reply"))[:64]
        tools.append({"name": name, "description": f"Return the reply as a {name} object.",
                      "input_schema": spec.get("schema") or {"type": "object"}})
        out.schema_tool = name
        out.forced = caps.forced_tool and thinking_budget is None
        if out.forced:
            kwargs["tool_choice"] = {"type": "tool", "name": name}
        else:  # after the cached block: the instruction does not break the cached prefix
            kwargs["tool_choice"] = {"type": "auto"}
            system.append({"type": "text", "text": ASK_FOR_TOOL.format(name=name)})
    if system:
        kwargs["system"] = system
    if tools:
        kwargs["tools"] = tools
    if thinking_budget is not None:
        kwargs["thinking"] = {"type": "enabled", "budget_tokens": int(thinking_budget)}
        kwargs["max_tokens"] += int(thinking_budget)
    elif caps.sampling and request.get("temperature") is not None:
        out.extra["temperature"] = float(request["temperature"])
        out.sampled = True
    return out


def _text(content: Any) -> str:
    """OpenAI content (a string or a list of parts) as text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content
                       if isinstance(p, dict) and p.get("type") in (None, "text"))
    return "" if content is None else str(content)


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function") or tool
    return {"name": fn["name"], "description": fn.get("description") or "",
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """User, assistant and tool messages as Messages API turns; consecutive turns of one role
    are merged (tool results of one step belong in one user turn) and empty ones dropped."""
    turns: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id"),
                                     "content": _text(m.get("content"))}]
        elif role == "assistant":
            blocks = _assistant_blocks(m)
        else:
            role = "user"
            text = _text(m.get("content"))
            blocks = [{"type": "text", "text": text}] if text.strip() else []
            blocks += _image_blocks(m.get("content"))
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _image_blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI image parts with base64 data URLs as Messages API image blocks (other URLs as
    url sources)."""
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict) or part.get("type") != "image_url":
            continue
        url = str((part.get("image_url") or {}).get("url") or "")
        head, sep, data = url.partition(";base64,")
        if url.startswith("data:") and sep:
            source = {"type": "base64", "media_type": head.removeprefix("data:"), "data": data}
        else:
            source = {"type": "url", "url": url}
        blocks.append({"type": "image", "source": source})
    return blocks


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls") or []
    # With thinking on, the API wants a tool-calling turn sent back with its thinking blocks
    # first; from_anthropic keeps them on the turn's first tool call for that.
    blocks: list[dict[str, Any]] = list(calls[0].get("thinking") or []) if calls else []
    text = _text(message.get("content"))
    if text.strip():
        blocks.append({"type": "text", "text": text})
    for call in calls:
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):  # input must be an object: keep what was said
            arguments = {"arguments": fn.get("arguments")}
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                       "input": arguments})
    return blocks


def usage_of(raw: dict[str, Any] | None) -> Usage:
    """Messages API usage as ours: its `input_tokens` excludes the cache's tokens, our
    prompt_tokens includes them (records.Usage)."""
    raw = raw or {}
    read = int(raw.get("cache_read_input_tokens") or 0)
    write = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(prompt_tokens=int(raw.get("input_tokens") or 0) + read + write,
                 completion_tokens=int(raw.get("output_tokens") or 0), calls=1,
                 cache_read_tokens=read, cache_write_tokens=write)


def from_anthropic(message: dict[str, Any], sent: Translated) -> Completion:
    """A Messages API reply (its JSON) as a Completion. The schema tool's input is the reply
    text; other tool_use blocks are tool calls in the OpenAI shape; thinking is not the
    answer and is kept only for sending a tool-calling turn back."""
    content = [b for b in message.get("content") or [] if isinstance(b, dict)]
    thinking = [b for b in content if b.get("type") in ("thinking", "redacted_thinking")]
    texts = [str(b.get("text") or "") for b in content if b.get("type") == "text"]
    structured = None
    calls: list[dict[str, Any]] = []
    for b in content:
        if b.get("type") != "tool_use":
            continue
        if sent.schema_tool is not None and b.get("name") == sent.schema_tool:
            structured = b.get("input")
            continue
        calls.append({"id": b.get("id"), "type": "function",
                      "function": {"name": b.get("name"),
                                   "arguments": json.dumps(b.get("input") or {})}})
    if calls and thinking:
        calls[0]["thinking"] = thinking
    stop = message.get("stop_reason")
    finish = _STOP.get(str(stop), stop)
    if structured is None and sent.schema_tool is not None:
        structured = _tool_call_in_text("".join(texts), sent.schema_tool)
    if structured is not None:
        text = json.dumps(structured, ensure_ascii=False)
        finish = "length" if finish == "length" else "stop"
    else:
        text = "".join(texts)
    usage = usage_of(message.get("usage"))
    if not text.strip() and not calls:
        if finish == "refusal":
            raise ModelError("invalid_output", "the model refused to answer (stop_reason "
                             "refusal)")
        if sent.schema_tool is not None and finish == "length":  # RoleClient grows the limit
            return Completion(text="", usage=usage, finish_reason="length")
        raise ModelError("empty_reply", "the reply has no content")
    return Completion(text=text, usage=usage, tool_calls=calls, finish_reason=finish)


def _tool_call_in_text(text: str, tool: str) -> dict[str, Any] | None:
    """The schema tool's input when a server wrote the forced call as text instead of a
    tool_use block: measured on llama.cpp's /v1/messages with the 0.5B model, which wrote
    `{"name": "Sum", "arguments": {"answer": 5}}` and then ran on to the token limit. Only the
    first JSON object counts; a bare object is taken as the input. RoleClient still checks it
    against the schema, so nothing is trusted because it parsed."""
    found = first_json_object(text)
    if found is None:
        return None
    value = json.loads(found)
    if value.get("name") == tool:
        inner = next((value[k] for k in ("arguments", "input", "parameters")
                      if isinstance(value.get(k), dict)), None)
        return inner
    return value
