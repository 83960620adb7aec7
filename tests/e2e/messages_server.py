"""An Anthropic Messages API server on 127.0.0.1 that answers from tests/scripted.py.

Run: python tests/e2e/messages_server.py --port-file PORT_FILE [--log LOG.jsonl]
         [--plan harmful,good] [--faults 429,529 --retry-after 1]
         [--no-sampling MODEL,...] [--no-forcing MODEL,...] [--rpm N --rate-window S]

POST /v1/messages takes a real Messages API body, turns it into the OpenAI-shaped request
`Script.respond` reads (system blocks -> a system message, content blocks -> text, a forced
tool's name -> the response_format schema name) and answers with real Messages API JSON:
a `tool_use` block whose input is the scripted JSON for a structured call, a text block
otherwise, a thinking block first when thinking is on. Usage counts prompt caching as the API
does: the prefix up to the last `cache_control` block (tools, then system) is written on the
first call that sends it (`cache_creation_input_tokens`) and read on every later one
(`cache_read_input_tokens`); `input_tokens` is the rest.

It refuses what the real API refuses, with its 400s: thinking with a forced tool choice or a
temperature, a budget under 1,024 or not below max_tokens; `temperature` for the models named
by --no-sampling, a forced tool choice for those named by --no-forcing. --faults lists the
answers of the first requests (429 with `retry-after: N`, 529 overloaded, 500), then all
succeed. Each logged line is {"t": arrival time, "headers": {...}, "body": {...}, "status"}.
With --rpm N [--rate-window S] it is a provider with a request limit (tests/scripted_limits.py):
`anthropic-ratelimit-requests-*` headers on every reply, a 429 `rate_limit_error` with
retry-after past N per S seconds (default 60), and each arrival with its status appended to
LOG.arrivals.jsonl.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripted import Script  # noqa: E402
from scripted_limits import RequestBucket  # noqa: E402

ASKED_TOOL = re.compile(r"`([A-Za-z0-9_-]{1,64})` tool")


def tokens(value: object) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content if isinstance(content, list) else []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(_text(block.get("content", "")))
    return "".join(parts)


def refusal(body: dict, no_sampling: list[str], no_forcing: list[str]) -> str | None:
    """The 400 message the real API gives this body, or None."""
    if not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
        return "max_tokens: Field required" if "max_tokens" not in body else "messages: empty"
    model = str(body.get("model", ""))
    choice = body.get("tool_choice") or {}
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens", 0)
        if budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
        if choice.get("type") in ("tool", "any"):
            return "Thinking may not be enabled when tool_choice forces tool use."
        if body.get("temperature", 1) != 1:
            return "`temperature` may only be set to 1 when thinking is enabled."
    if "temperature" in body and any(model.startswith(m) for m in no_sampling):
        return "`temperature` is deprecated for this model."
    if choice.get("type") == "tool" and any(model.startswith(m) for m in no_forcing):
        return "`tool_choice` forcing tool use is not supported for this model."
    names = {t.get("name") for t in body.get("tools") or []}
    if choice.get("type") == "tool" and choice.get("name") not in names:
        return f"tool_choice.name: no tool named {choice.get('name')!r}"
    return None


def structured_name(body: dict) -> str | None:
    """The tool this scripted model replies through: a forced one, or, with tool_choice auto,
    the offered tool its system prompt asks it to call (a model that follows instructions)."""
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        return choice.get("name")
    names = {t.get("name") for t in body.get("tools") or []}
    system = _text(body.get("system") or "")
    asked = [n for n in ASKED_TOOL.findall(system) if n in names]
    return asked[-1] if asked else None


def openai_shaped(body: dict, schema: str | None) -> dict:
    system = _text(body.get("system") or "")
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": m["role"], "content": _text(m.get("content", ""))}
                 for m in body["messages"]]
    request = {"model": body.get("model"), "messages": messages,
               "max_tokens": body.get("max_tokens")}
    if schema is not None:
        request["response_format"] = {"type": "json_schema", "json_schema": {"name": schema}}
    return request


class PromptCache:
    """Which cached prefixes this server has seen (a prefix is written once, then read)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def usage(self, body: dict, output: str) -> dict:
        system = body.get("system") or []
        system = [{"type": "text", "text": system}] if isinstance(system, str) else system
        parts = [*(body.get("tools") or []), *system]
        marks = [i for i, part in enumerate(parts) if part.get("cache_control")]
        total = tokens([parts, body["messages"]])
        write = read = 0
        if marks:
            prefix = parts[: marks[-1] + 1]
            size = tokens(prefix)
            key = hashlib.sha256(json.dumps([body.get("model"), prefix], sort_keys=True)
                                 .encode()).hexdigest()
            with self.lock:
                if key in self.seen:
                    read = size
                else:
                    self.seen.add(key)
                    write = size
        return {"input_tokens": max(1, total - read - write), "output_tokens": tokens(output),
                "cache_creation_input_tokens": write, "cache_read_input_tokens": read}


def make_handler(script: Script, log: Path | None, faults: list[str], retry_after: str,
                 no_sampling: list[str], no_forcing: list[str],
                 bucket: RequestBucket | None = None):
    cache = PromptCache()
    posts = itertools.count()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, kind: str, message: str, headers: dict | None = None) -> None:
            self._send(code, {"type": "error", "error": {"type": kind, "message": message}},
                       headers)

        def _log(self, body: dict, status: int) -> None:
            if log is None:
                return
            seen = {k.lower(): v for k, v in self.headers.items()
                    if k.lower() in ("x-api-key", "anthropic-version", "authorization")}
            with lock, open(log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"t": time.time(), "headers": seen, "body": body,
                                     "status": status}) + "\n")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") != "/v1/messages":
                self._error(404, "not_found_error", f"no route {self.path}")
                return
            limits: dict[str, str] = {}
            if bucket is not None:
                status, limits = bucket.take()
                if status == 429:
                    self._log(body, 429)
                    self._error(429, "rate_limit_error", "Number of requests has exceeded "
                                "your per-minute rate limit (scripted)", limits)
                    return
            n = next(posts)
            fault = faults[n] if n < len(faults) else None
            if fault == "429":
                self._log(body, 429)
                self._error(429, "rate_limit_error", "rate limited (scripted)",
                            {"retry-after": retry_after,
                             "anthropic-ratelimit-requests-remaining": "0"})
                return
            if fault in ("529", "500"):
                self._log(body, int(fault))
                kind = "overloaded_error" if fault == "529" else "api_error"
                self._error(int(fault), kind, "Overloaded" if fault == "529" else "scripted")
                return
            refused = refusal(body, no_sampling, no_forcing)
            if refused is not None:
                self._log(body, 400)
                self._error(400, "invalid_request_error", refused)
                return
            self._log(body, 200)
            schema = structured_name(body)
            reply = script.respond(openai_shaped(body, schema))
            content: list[dict] = []
            if (body.get("thinking") or {}).get("type") == "enabled":
                content.append({"type": "thinking", "thinking": "Let me see.",
                                "signature": "c2lnbmF0dXJl"})
            if schema is not None:
                content.append({"type": "tool_use", "id": f"toolu_{n:06d}", "name": schema,
                                "input": json.loads(reply)})
                stop = "tool_use"
            else:
                content.append({"type": "text", "text": reply})
                stop = "end_turn"
            self._send(200, {"id": f"msg_{n:06d}", "type": "message", "role": "assistant",
                             "model": body.get("model"), "content": content,
                             "stop_reason": stop, "stop_sequence": None,
                             "usage": cache.usage(body, reply)}, limits)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log")
    parser.add_argument("--plan", default="harmful,good")
    parser.add_argument("--faults", default="")
    parser.add_argument("--retry-after", default="1")
    parser.add_argument("--no-sampling", default="")
    parser.add_argument("--no-forcing", default="")
    parser.add_argument("--rpm", type=int, default=0)
    parser.add_argument("--rate-window", type=float, default=60.0)
    args = parser.parse_args()

    def names(value: str) -> list[str]:
        return [v for v in value.split(",") if v]

    bucket = RequestBucket(args.rpm, args.rate_window,
                           Path(args.log + ".arrivals.jsonl") if args.log else None,
                           style="anthropic") if args.rpm else None
    handler = make_handler(Script(analyst_plan=args.plan.split(",")),
                           Path(args.log) if args.log else None, names(args.faults),
                           args.retry_after, names(args.no_sampling), names(args.no_forcing),
                           bucket)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
