"""A fake Codex CLI: `codex exec --json ... -` as Codex 0.171.0 prints its JSONL events.

The events are the ones the real CLI printed against a server of ours: `thread.started`, an
`item.completed` of type `error` (its warning about an unknown model's metadata: not the
reply), `turn.started`, `item.completed` of type `agent_message` (the reply), and
`turn.completed` with `usage` (input_tokens including cached_input_tokens,
cache_write_input_tokens, output_tokens, reasoning_output_tokens). A failed call is an `error`
event, then `turn.failed`, and exit status 1. The system text is read from
`-c model_instructions_file="PATH"`, the prompt from stdin (`-`) or the last argument.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_cli import agent_answer, answer, fake_options, tokens  # noqa: E402

_ERRORS = {0: "Reconnecting... waiting for network (Connection failed: error sending request)",
           401: "unexpected status 401 Unauthorized: invalid key, url: http://127.0.0.1/v1/responses",
           429: "exceeded retry limit, last status: 429 Too Many Requests",
           500: "We’re currently experiencing high demand, which may cause temporary errors."}


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


def agent(opts, prompt: str, model: str, persist: bool) -> int:  # noqa: ANN001
    """Progress on stderr, the final message on stdout, and (without --ephemeral) the session
    record where the real CLI keeps it: $CODEX_HOME/sessions/Y/M/D/rollout-*.jsonl, with
    `response_item` lines for messages, tool calls and their output."""
    reply, skill_file = agent_answer(opts, prompt, model)
    print(f"OpenAI Codex (fake)\n--------\nmodel: {model}\n--------\nuser\n{prompt}\n"
          f"exec cat {skill_file}\ncodex\n{reply}", file=sys.stderr)
    home = os.environ.get("CODEX_HOME")
    if persist and home:
        folder = Path(home) / "sessions" / "2026" / "12" / "01"
        folder.mkdir(parents=True, exist_ok=True)
        items = [
            {"type": "message", "role": "developer", "content": [
                {"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": prompt}]},
            {"type": "function_call", "name": "exec_command",
             "arguments": json.dumps({"cmd": f"cat {skill_file}"}), "call_id": "call_1"},
            {"type": "function_call_output", "call_id": "call_1",
             "output": skill_file.read_text(encoding="utf-8")},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": reply}]},
        ]
        with open(folder / f"rollout-2026-12-01T00-00-00-{uuid.uuid4()}.jsonl", "w",
                  encoding="utf-8") as out:
            out.write(json.dumps({"type": "session_meta", "payload": {"cwd": os.getcwd()}})
                      + "\n")
            for item in items:
                out.write(json.dumps({"type": "response_item", "payload": item}) + "\n")
            for total in (40, 75):  # a running total, as the real CLI's token_count events
                out.write(json.dumps({"type": "event_msg", "payload": {
                    "type": "token_count", "info": {"total_token_usage": {
                        "input_tokens": total, "cached_input_tokens": total - 30,
                        "output_tokens": 5}}}}) + "\n")
    print(reply)
    return 0


def main() -> int:
    opts, rest = fake_options(sys.argv[1:])
    if not rest or rest[0] != "exec":
        print("fake codex: only `codex exec` is faked", file=sys.stderr)
        return 2
    config: dict[str, object] = {}
    words, i = rest[1:], 0
    positional: list[str] = []
    while i < len(words):
        word = words[i]
        if word in ("-c", "--config"):
            key, _, value = words[i + 1].partition("=")
            try:  # TOML basic strings, booleans and numbers read as JSON (Python 3.10: no
                config[key] = json.loads(value)  # tomllib); an inline table stays text
            except json.JSONDecodeError:
                config[key] = value
            i += 2
        elif word in ("-m", "--model", "-s", "--sandbox", "-C", "--cd"):
            config["model" if word in ("-m", "--model") else word] = words[i + 1]
            i += 2
        elif word.startswith("-") and word != "-":
            i += 1
        else:
            positional.append(word)
            i += 1
    prompt = sys.stdin.read() if not positional or positional[-1] == "-" else positional[-1]
    if "--json" not in words:  # the command harness's agent: text out, a session record
        return agent(opts, prompt, str(config.get("model") or "gpt-5.5"),
                     "--ephemeral" not in words)
    path = config.get("model_instructions_file")
    system = Path(str(path)).read_text(encoding="utf-8") if path else ""
    model = str(config.get("model") or "gpt-5.5")
    emit({"type": "thread.started", "thread_id": str(uuid.uuid4())})
    emit({"type": "item.completed", "item": {"id": "item_0", "type": "error", "message": (
        f"Model metadata for `{model}` not found. Defaulting to fallback metadata; this can "
        "degrade performance and cause issues.")}})
    emit({"type": "turn.started"})
    if opts.fail is not None:
        message = _ERRORS.get(opts.fail, f"unexpected status {opts.fail}")
        emit({"type": "error", "message": message})
        emit({"type": "turn.failed", "error": {"message": message}})
        return 1
    if opts.garbage:
        print("codex: something went sideways")
        return 0
    reply = answer(opts, system, prompt, model)
    emit({"type": "item.completed", "item": {"id": "item_1", "type": "agent_message",
                                             "text": reply}})
    cached = tokens(system) if system else 0
    emit({"type": "turn.completed", "usage": {
        "input_tokens": tokens(prompt) + cached, "cached_input_tokens": cached,
        "cache_write_input_tokens": 0, "output_tokens": tokens(reply),
        "reasoning_output_tokens": 0}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
