"""What goes into an agent CLI used as a model, and what comes back out of it.

A chat request becomes text in one documented way, so any CLI (and our fake ones in
tests/agents/) reads the same thing:

- **system text**: the system messages, joined by a blank line. Presets that take a system
  prompt of their own get it there (Claude Code `--system-prompt-file`, Codex
  `model_instructions_file`): a skill is then a constant prefix of every target call, which an
  inference server's prompt cache reuses (the CLIs put the working folder, fresh per call,
  into their default prompts). A plain command gets it at the head of its prompt, between a
  `<system>` line and a `</system>` line.
- **prompt**: one user message is the prompt as it is; a conversation (the corrective retry of
  a structured call is user, assistant, user) is a line asking for a reply to the last user
  turn, then each turn between `<user>` / `<assistant>` lines and their closing lines.
- **structured requests** (`response_format` with a JSON schema, the optimizer's calls): the
  prompt ends with an instruction to reply with only a JSON object, the schema's name and the
  schema. A CLI has no constrained decoding, so the reply's first JSON object is taken out
  (`first_json_object`) and RoleClient validates it like any reply: not the asked JSON is an
  `invalid_output` failure after one corrective retry.

Replies are read from the formats the real CLIs print (observed with Claude Code 2.1.197 and
Codex 0.171.0 against a server of ours): Claude Code's `--output-format json` result object
(`result`, `is_error`, `api_error_status`, `stop_reason`, `usage` with Anthropic's cache
fields), Codex's `exec --json` events (`item.completed` of type `agent_message`,
`turn.completed` with `usage`, `turn.failed` / `error`), or a plain command's stdout. A failure
becomes a ModelError whose kind says whether retrying can help.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from skilltrain.models.base import Completion, ModelError
from skilltrain.records import Usage

CONVERSATION_LEAD = "The conversation so far; reply as the assistant to the last user turn."
SCHEMA_LEAD = ("Reply with only a JSON object that matches the JSON Schema below: no other "
               "text, no code fence.")
_CONNECTION = re.compile(r"unable to connect|connection (refused|failed|reset|error)|"
                         r"econnrefused|error sending request|waiting for network|"
                         r"could not resolve|lookup address|name does not resolve",
                         re.IGNORECASE)
_LOGIN = re.compile(r"not logged in|/login|invalid api key|authentication|unauthorized",
                    re.IGNORECASE)  # a key or login is missing: retrying cannot fix it
_STATUS = re.compile(r"\b([45]\d\d)\b")
# Claude Code 2.1.197 on a reply cut at CLAUDE_CODE_MAX_OUTPUT_TOKENS (seen on the 0.5B model)
_CUT = re.compile(r"exceeded the \d+ output token maximum", re.IGNORECASE)


@dataclass(frozen=True)
class Prompt:
    """A request as a CLI takes it: the system text (may be empty) and the prompt."""

    system: str
    prompt: str

    def as_one(self) -> str:
        """Both in one text, for a CLI with no system prompt of its own."""
        if not self.system:
            return self.prompt
        return f"<system>\n{self.system}\n</system>\n\n{self.prompt}"


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content
                         if isinstance(p, dict) and p.get("type", "text") == "text")
    return "" if content is None else str(content)


def flatten(messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
            ) -> Prompt:
    """The request's messages as system text and prompt (see the module docstring)."""
    system = "\n\n".join(text_of(m.get("content")) for m in messages
                         if m.get("role") == "system")
    turns = [m for m in messages if m.get("role") != "system"]
    if len(turns) == 1 and turns[0].get("role") == "user":
        prompt = text_of(turns[0].get("content"))
    else:
        blocks = [f"<{m.get('role', 'user')}>\n{text_of(m.get('content'))}\n"
                  f"</{m.get('role', 'user')}>" for m in turns]
        prompt = "\n\n".join([CONVERSATION_LEAD, *blocks])
    instruction = schema_instruction(response_format)
    if instruction:
        prompt = f"{prompt.rstrip()}\n\n{instruction}"
    return Prompt(system=system, prompt=prompt)


def schema_instruction(response_format: dict[str, Any] | None) -> str:
    """The words that ask for a JSON reply, with the schema's name and the schema itself."""
    spec = (response_format or {}).get("json_schema") or {}
    schema = spec.get("schema")
    if not schema:
        return ""
    name = spec.get("name") or schema.get("title") or "Reply"
    return (f"{SCHEMA_LEAD}\nJSON Schema {name}:\n"
            f"{json.dumps(schema, ensure_ascii=False, separators=(',', ':'))}")


def first_json_object(text: str) -> str | None:
    """The first JSON object in a reply (prose or a code fence around it is dropped), as
    text; None when there is none."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return text[start:end]
        start = text.find("{", end)
    return None


def last_line(text: str) -> str:
    """The last non-empty line of a stream, where CLIs print what went wrong."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def kind_of(status: int | None, message: str) -> str:
    """The ModelError kind for an HTTP status a CLI reports (or its message, without one)."""
    if _CUT.search(message):  # asking again the same way gets the same cut: not retried
        return "truncated"
    if status is None:
        found = _STATUS.search(message)
        status = int(found.group(1)) if found else None
    if status == 429 or "too many requests" in message.lower():
        return "rate_limit"
    if status in (401, 403, 404) or (status is None and _LOGIN.search(message)):
        return "fatal"
    if status is not None and status >= 500:
        return "server_error"
    if status is not None and status >= 400:
        return "http_error"
    if _CONNECTION.search(message):
        return "connection"
    return "server_error"


def timed_out_kind(stdout: str, stderr: str) -> str:
    """A CLI killed at the deadline: "connection" when its output shows it could not reach its
    endpoint (Codex retries that forever), so the circuit breaker can end the run; else
    "timeout"."""
    return "connection" if _CONNECTION.search(stdout[-4000:] + stderr[-4000:]) else "timeout"


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def read_claude(stdout: str, stderr: str, returncode: int | None) -> Completion:
    """Claude Code's `--output-format json` result: one object with `type: result`."""
    results = [e for e in _json_lines(stdout) if e.get("type") == "result"]
    if not results:
        if returncode != 0:
            why = last_line(stderr) or last_line(stdout) or "no output"
            raise ModelError(kind_of(None, why), f"claude exited with status {returncode}: {why}")
        raise ModelError("bad_response", "claude printed no JSON result: "
                         f"{last_line(stdout) or 'no output'}")
    data = results[-1]
    if data.get("is_error") or returncode not in (0, None):
        status = data.get("api_error_status")
        why = " ".join(str(data.get("result") or data.get("subtype") or "error").split())[:300]
        raise ModelError(kind_of(status if isinstance(status, int) else None, why),
                         f"claude: {why}")
    text = data.get("result")
    if not isinstance(text, str):
        raise ModelError("bad_response", "claude's result has no text")
    if not text.strip():
        raise ModelError("empty_reply", "claude's result is empty")
    u = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    read, write = _int(u.get("cache_read_input_tokens")), _int(u.get("cache_creation_input_tokens"))
    usage = Usage(prompt_tokens=_int(u.get("input_tokens")) + read + write,  # Anthropic's input
                  completion_tokens=_int(u.get("output_tokens")), calls=1,  # excludes the cache
                  cache_read_tokens=read, cache_write_tokens=write)
    finish = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}.get(
        str(data.get("stop_reason")))
    return Completion(text=text, usage=usage, finish_reason=finish)


def read_codex(stdout: str, stderr: str, returncode: int | None) -> Completion:
    """Codex's `exec --json` events: the last `agent_message` item is the reply; the usage of
    every `turn.completed` is added up; `turn.failed` (or a bare `error`) is the failure."""
    events = _json_lines(stdout)
    failed = [e for e in events if e.get("type") == "turn.failed"]
    if failed or returncode not in (0, None):
        errors = [str((e.get("error") or {}).get("message") or "") for e in failed] + \
                 [str(e.get("message") or "") for e in events if e.get("type") == "error"]
        why = next((m for m in reversed(errors) if m), "") or last_line(stderr) or "no output"
        why = " ".join(why.split())[:300]
        raise ModelError(kind_of(None, why), f"codex: {why}")
    if not events:
        raise ModelError("bad_response", f"codex printed no JSON events: "
                         f"{last_line(stdout) or 'no output'}")
    messages = [e["item"] for e in events if e.get("type") == "item.completed"
                and isinstance(e.get("item"), dict) and e["item"].get("type") == "agent_message"]
    text = str(messages[-1].get("text") or "") if messages else ""
    if not text.strip():
        raise ModelError("empty_reply", "codex gave no agent message")
    usage = Usage(calls=1)
    for e in events:
        u = e.get("usage") if e.get("type") == "turn.completed" else None
        if isinstance(u, dict):  # OpenAI's input_tokens include the cached ones
            usage += Usage(prompt_tokens=_int(u.get("input_tokens")),
                           completion_tokens=_int(u.get("output_tokens")),
                           cache_read_tokens=_int(u.get("cached_input_tokens")),
                           cache_write_tokens=_int(u.get("cache_write_input_tokens")))
    return Completion(text=text, usage=usage)


def read_plain(stdout: str, stderr: str, returncode: int | None) -> Completion:
    """A plain command: its stdout is the reply. It reports no usage: the call is counted,
    its tokens are not."""
    if returncode != 0:
        why = last_line(stderr) or last_line(stdout) or "no output"
        raise ModelError("server_error", f"the command exited with status {returncode}: {why}")
    if not stdout.strip():
        raise ModelError("empty_reply", "the command printed nothing")
    return Completion(text=stdout.strip(), usage=Usage(calls=1))
