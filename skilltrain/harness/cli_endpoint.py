"""Pointing Claude Code or Codex at a model endpoint of ours, and reading back what they did.

Both the command harness (`command.model: target`: the agent CLI runs on the run's target model,
e.g. the embedded llama.cpp server, which speaks /v1/messages and /v1/responses) and a `cmd:`
model (models/cli_model.py) need the same settings, checked against the real CLIs (Claude Code
2.1.197, Codex 0.171.0) and a server of ours:

- Claude Code reads ANTHROPIC_BASE_URL (the root, it appends /v1/messages) and, under `--bare`,
  only ANTHROPIC_API_KEY (a placeholder for a server that checks none). Three switches keep a
  local server fast: CLAUDE_CODE_ATTRIBUTION_HEADER=0 (its billing line changes on every call
  and sits at the very start of the prompt, so no prefix could be reused), and, for the agent,
  `--exclude-dynamic-system-prompt-sections` (the working folder, fresh per task, moves out of the
  system prompt, so the system prompt and tool definitions stay a cached prefix); plus
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, without which it spends a second model call per
  prompt on a session title. `--bare` keeps its prompt near 1.2K tokens (18.9K without, past
  the embedded server's 16K context).
- Codex takes a provider from `-c` options (TOML values): the base URL with /v1, the Responses
  wire API, its own retries off.

The agent's HOME (and CODEX_HOME) is `agent_home(workspace)`, under the workspace's `.tmp`: no
user config is read, the CLI's own files stay out of the workspace listing the analysts see,
and its session record is left where `transcript` reads it (Claude Code's
`.claude/projects/*/*.jsonl`, Codex's `.codex/sessions/**/rollout-*.jsonl`): compact turns for
the rollout's trajectory, what the agent read, ran and wrote, not only its final words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NO_KEY = "skilltrain-no-key"  # what a CLI that insists on a key sends to a server needing none
PROVIDER = "skilltrain"
CLAUDE_QUIET = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "CLAUDE_CODE_ATTRIBUTION_HEADER": "0"}
_TRANSCRIPTS = {"claude-code": ".claude/projects/*/*.jsonl",
                "codex": ".codex/sessions/**/rollout-*.jsonl"}


def anthropic_root(base_url: str) -> str:
    """Claude Code appends /v1/messages itself: the root of an OpenAI-style /v1 base URL."""
    return base_url.rstrip("/").removesuffix("/v1")


def toml_str(text: str) -> str:
    """A TOML basic string (Codex's `-c` values are TOML)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def codex_provider(base_url: str, key_env: str | None = None) -> list[str]:
    """`-c` options that make Codex send every call to `base_url` (a /v1 URL) over the
    Responses API, without its own retries (ours count them)."""
    table = (f"{{name={toml_str(PROVIDER)}, base_url={toml_str(base_url.rstrip('/'))}, "
             'wire_api="responses", request_max_retries=0, stream_max_retries=0'
             + (f", env_key={toml_str(key_env)}" if key_env else "") + "}")
    return ["-c", f"model_provider={toml_str(PROVIDER)}", "-c",
            f"model_providers.{PROVIDER}={table}"]


def agent_home(workspace: Path) -> Path:
    """Where an agent on our endpoint keeps its home (made on first use)."""
    home = workspace / ".tmp" / "home"
    home.mkdir(parents=True, exist_ok=True)
    return home


def agent_on_endpoint(preset: str, base_url: str, model: str, home: Path,
                      max_tokens: int | None = None) -> tuple[list[str], dict[str, str]]:
    """The words to add after the program's own (`claude` / `codex exec`) and the environment
    that run a harness preset's agent on `base_url` with `model`, at home in `home`."""
    if preset == "claude-code":
        env = {**CLAUDE_QUIET, "HOME": str(home), "ANTHROPIC_BASE_URL": anthropic_root(base_url),
               "ANTHROPIC_API_KEY": NO_KEY}
        if max_tokens:
            env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(max_tokens)
        return ["--bare", "--exclude-dynamic-system-prompt-sections", "--model", model], env
    if preset == "codex":
        (home / ".codex").mkdir(exist_ok=True)
        return [*codex_provider(base_url), "-c", f"model={toml_str(model)}"], \
            {"HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    return [], {"SKILLTRAIN_TARGET_BASE_URL": base_url, "SKILLTRAIN_TARGET_MODEL": model}


def transcript(preset: str, home: Path, limit: int) -> dict[str, Any] | None:
    """The trajectory entry for the CLI's own session record, if it left one in `home`: its
    turns, each string cut to `limit` characters in the middle."""
    pattern = _TRANSCRIPTS.get(preset)
    files = sorted(home.glob(pattern)) if pattern and home.is_dir() else []
    if not files:
        return None
    turns: list[dict[str, Any]] = []
    usage = {"input": 0, "cache_read": 0, "output": 0}
    counted: set[str] = set()
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            if preset == "claude-code":
                turns += claude_turn(record)
                _claude_usage(record, usage, counted)
            else:
                turns += codex_turn(record)
                _codex_usage(record, usage)
    return {"role": "harness", "event": "transcript",
            "files": [str(p.relative_to(home)) for p in files], "usage": usage,
            "turns": [{k: _clip(v, limit) for k, v in t.items()} for t in turns]}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _claude_usage(record: dict[str, Any], usage: dict[str, int], counted: set[str]) -> None:
    """Tokens of each model reply once (a reply with several parts is several lines with the
    same message id and usage); input is all of the prompt, cache reads included."""
    message = record.get("message")
    if record.get("type") != "assistant" or not isinstance(message, dict):
        return
    u, key = message.get("usage"), str(message.get("id") or record.get("uuid"))
    if not isinstance(u, dict) or key in counted:
        return
    counted.add(key)
    read = _count(u.get("cache_read_input_tokens"))
    usage["input"] += _count(u.get("input_tokens")) + read + \
        _count(u.get("cache_creation_input_tokens"))
    usage["cache_read"] += read
    usage["output"] += _count(u.get("output_tokens"))


def _codex_usage(record: dict[str, Any], usage: dict[str, int]) -> None:
    """Codex's running total (`token_count` events): the last one is the session's."""
    info = (record.get("payload") or {}).get("info") if record.get("type") == "event_msg" \
        else None
    total = info.get("total_token_usage") if isinstance(info, dict) else None
    if isinstance(total, dict):
        usage.update(input=_count(total.get("input_tokens")),
                     cache_read=_count(total.get("cached_input_tokens")),
                     output=_count(total.get("output_tokens")))


def _clip(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    half = max(limit // 2 - 10, 1)
    return f"{value[:half]} [... {len(value) - 2 * half} characters cut ...] {value[-half:]}"


def claude_turn(record: dict[str, Any]) -> list[dict[str, str]]:
    """One line of a Claude Code session: a user or assistant message, its parts as text."""
    message = record.get("message")
    if record.get("type") not in ("user", "assistant") or not isinstance(message, dict):
        return []
    content = message.get("content")
    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
    out = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            out.append({"role": record["type"], "content": str(part["text"])})
        elif kind == "tool_use":
            out.append({"role": "tool_call", "name": str(part.get("name")),
                        "content": json.dumps(part.get("input"), ensure_ascii=False)})
        elif kind == "tool_result":
            result = part.get("content")
            if isinstance(result, list):
                result = "\n".join(str(r.get("text", "")) for r in result if isinstance(r, dict))
            out.append({"role": "tool_result", "content": str(result)})
    return out


def codex_turn(record: dict[str, Any]) -> list[dict[str, str]]:
    """One line of a Codex session (`response_item` lines): the user's and assistant's
    messages, tool calls and their output; its own instructions are left out."""
    item = record.get("payload")
    if record.get("type") != "response_item" or not isinstance(item, dict):
        return []
    kind = item.get("type")
    if kind == "message" and item.get("role") in ("user", "assistant"):
        text = "\n".join(str(c.get("text", "")) for c in item.get("content") or []
                         if isinstance(c, dict))
        if text.startswith("<environment_context>"):
            return []
        return [{"role": str(item["role"]), "content": text}] if text else []
    if kind in ("function_call", "custom_tool_call", "local_shell_call"):
        return [{"role": "tool_call", "name": str(item.get("name") or kind),
                 "content": str(item.get("arguments") or item.get("input") or
                                json.dumps(item.get("action"), ensure_ascii=False))}]
    if kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        return [{"role": "tool_result", "content": output if isinstance(output, str)
                 else json.dumps(output, ensure_ascii=False)}]
    return []
