"""A fake Claude Code CLI: `claude -p ... --output-format json` as Claude Code 2.1.197 prints it.

The result object has the fields the real one printed against a server of ours (type, subtype,
is_error, api_error_status, result, stop_reason, session_id, total_cost_usd, usage with
Anthropic's cache fields, modelUsage, ...); a failed API call is `is_error: true` with the
HTTP status in `api_error_status` (null for a connection failure) and exit status 1, as the
real CLI does with CLAUDE_CODE_MAX_RETRIES=0. The answer comes from tests/scripted.py (see
fake_cli.py for the options that pick a behaviour).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_cli import agent_answer, answer, fake_options, tokens  # noqa: E402

_ERRORS = {0: "API Error: Unable to connect to API (ConnectionRefused)",
           401: "Failed to authenticate. API Error: 401 invalid x-api-key",
           429: "API Error: Request rejected (429) · rate limited",
           500: "API Error: 500 Internal server error. This is a server-side issue, usually "
                "temporary — try again in a moment."}


def result(text: str, *, error: int | None = None, usage: dict | None = None,
           model: str = "claude-sonnet-4-5") -> dict:
    u = usage or {"input_tokens": 0, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 0}
    return {
        "type": "result", "subtype": "success", "is_error": error is not None,
        "api_error_status": (error or None) if error is not None else None,
        "duration_ms": 12, "duration_api_ms": 0 if error is not None else 10,
        **({} if error is not None else {"ttft_ms": 9, "ttft_stream_ms": 9,
                                         "time_to_request_ms": 1}),
        "num_turns": 1, "result": text,
        "stop_reason": "stop_sequence" if error is not None else "end_turn",
        "session_id": str(uuid.uuid4()), "total_cost_usd": 0.0 if error is not None else 0.0007,
        "usage": {**u, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                  "service_tier": "standard",
                  "cache_creation": {"ephemeral_1h_input_tokens": 0,
                                     "ephemeral_5m_input_tokens": 0},
                  "inference_geo": "", "iterations": [], "speed": "standard"},
        "modelUsage": {} if error is not None else {model: {
            "inputTokens": u["input_tokens"], "outputTokens": u["output_tokens"],
            "cacheReadInputTokens": u["cache_read_input_tokens"],
            "cacheCreationInputTokens": u["cache_creation_input_tokens"],
            "webSearchRequests": 0, "costUSD": 0.0007, "contextWindow": 200000,
            "maxOutputTokens": 32000}},
        "permission_denials": [], "terminal_reason": "completed", "fast_mode_state": "off",
        "uuid": str(uuid.uuid4()),
    }


def agent(opts, prompt: str, args: argparse.Namespace) -> int:  # noqa: ANN001
    """The agent's final text on stdout, and its session record where the real CLI keeps it:
    $HOME/.claude/projects/<working folder, / as ->/<session>.jsonl (unless
    --no-session-persistence), one message per line with its tool calls and results."""
    reply, skill_file = agent_answer(opts, prompt, args.model)
    if not args.no_session_persistence:
        session = str(uuid.uuid4())
        folder = Path.home() / ".claude" / "projects" / str(Path.cwd()).replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        call = {"type": "tool_use", "id": "toolu_1", "name": "Read",
                "input": {"file_path": str(skill_file)}}
        first = {"input_tokens": 90, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0, "output_tokens": 12}
        second = {**first, "input_tokens": 20, "cache_read_input_tokens": 100}
        lines = [  # a reply in two parts is two lines with one message id and one usage
            {"type": "user", "message": {"role": "user", "content": prompt}},
            {"type": "assistant", "message": {"id": "msg_1", "role": "assistant", "content": [
                {"type": "text", "text": "Reading the skill."}], "usage": first}},
            {"type": "assistant", "message": {"id": "msg_1", "role": "assistant",
                                              "content": [call], "usage": first}},
            {"type": "user", "message": {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": skill_file.read_text(encoding="utf-8")}]}},
            {"type": "assistant", "message": {"id": "msg_2", "role": "assistant", "content": [
                {"type": "text", "text": reply}], "usage": second}},
        ]
        with open(folder / f"{session}.jsonl", "w", encoding="utf-8") as out:
            for line in lines:
                out.write(json.dumps({**line, "sessionId": session, "cwd": str(Path.cwd())})
                          + "\n")
    print(reply)
    return 0


def main() -> int:
    opts, rest = fake_options(sys.argv[1:])
    cli = argparse.ArgumentParser(prog="claude", add_help=False)
    cli.add_argument("-p", "--print", action="store_true")
    cli.add_argument("--output-format", default="text")
    cli.add_argument("--system-prompt-file")
    cli.add_argument("--system-prompt")
    cli.add_argument("--model")
    for flag in ("--bare", "--no-session-persistence", "--verbose",
                 "--exclude-dynamic-system-prompt-sections"):
        cli.add_argument(flag, action="store_true")
    for flag in ("--tools", "--permission-mode", "--allowedTools", "--settings",
                 "--json-schema", "--append-system-prompt"):
        cli.add_argument(flag)
    cli.add_argument("prompt", nargs="?")
    args = cli.parse_args(rest)  # an unknown flag fails, as in the real CLI
    if not args.print:
        print("fake claude: only print mode (-p) is faked", file=sys.stderr)
        return 2
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    system = args.system_prompt or ""
    if args.system_prompt_file:
        system = Path(args.system_prompt_file).read_text(encoding="utf-8")
    if opts.fail is not None:  # the real CLI: the error on stdout, nothing on stderr
        message = _ERRORS.get(opts.fail, f"API Error: {opts.fail} error")
        print(json.dumps(result(message, error=opts.fail))
              if args.output_format == "json" else message)
        return 1
    if opts.garbage:
        print("Welcome to Claude Code! This is not JSON.")
        return 0
    if not args.system_prompt_file and "task.md" in prompt:  # the command harness's agent
        return agent(opts, prompt, args)
    reply = answer(opts, system, prompt, args.model)
    usage = {"input_tokens": tokens(prompt), "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": tokens(system) if system else 0,
             "output_tokens": tokens(reply)}
    if args.output_format == "json":
        print(json.dumps(result(reply, usage=usage, model=args.model or "claude-sonnet-4-5")))
    else:
        print(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
