"""An OpenAI-compatible HTTP server on 127.0.0.1 that answers from tests/scripted.py, with an
optional fault-injecting mode.

Run: python tests/e2e/scripted_server.py --port-file PORT_FILE [--log LOG.jsonl]
         [--faults 0.2 --fault-kinds 429,500,delay,truncated,empty --delay 2.0 --seed 1]
         [--latency 0.02] [--length-below 1024] [--follows-form]
         [--auth-log AUTH.jsonl] [--echo-auth-every N] [--deaf-model NAME ...]
Writes its port to PORT_FILE once listening; appends every request body to LOG; with --faults,
answers that fraction of requests with a fault instead, and keeps the count of injected faults
by kind in LOG.faults.json. With --length-below N, a request whose max_tokens is below N gets
its reply cut in half with finish_reason "length", as a model stopped at its token limit
(off by default). --auth-log appends each request's model and Authorization header; with
--echo-auth-every N, every Nth request gets a 400 whose error text echoes that header back, as
some endpoints do with a bad key. A --deaf-model (repeatable) answers as if it had no skill.
With --rpm N [--rate-window S] it is a provider with a request limit (tests/scripted_limits.py):
x-ratelimit-* headers on every reply, a 429 with retry-after past N per S seconds (default 60),
and each arrival with its status appended to LOG.arrivals.jsonl.
With --package the replies come from tests/scripted_package.py (a skill package's target and
an optimizer whose edits name package files) instead; with --game the target plays the counter
game of tests/agents/counter_env.py (tests/scripted_game.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripted import Script  # noqa: E402
from scripted_limits import RequestBucket  # noqa: E402


class Faults:
    def __init__(self, rate: float, kinds: list[str], seed: int, stats: Path | None):
        self.rate, self.kinds, self.stats = rate, kinds, stats
        self.rng = random.Random(seed)
        self.counts: Counter = Counter()
        self.lock = threading.Lock()

    def draw(self) -> str | None:
        with self.lock:
            if self.rate <= 0 or self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(self.kinds)
            self.counts[kind] += 1
            if self.stats is not None:
                tmp = self.stats.with_suffix(".tmp")
                tmp.write_text(json.dumps(dict(self.counts)))
                tmp.replace(self.stats)
            return kind


def completion_body(body: dict, text: str, finish_reason: str = "stop") -> dict:
    prompt_tokens = sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion",
        "created": int(time.time()), "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4 + 1,
                  "total_tokens": prompt_tokens + len(text) // 4 + 1},
    }


def make_handler(script: Script, log: Path | None, faults: Faults, delay: float,
                 latency: float, length_below: int = 0):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        auth_log: Path | None = None
        echo_auth_every = 0
        posts = itertools.count(1)
        bucket: RequestBucket | None = None
        rate_headers: dict[str, str] = {}

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send_raw(self, code: int, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in self.rate_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send(self, code: int, body: dict) -> None:
            self._send_raw(code, json.dumps(body).encode())

        def do_GET(self) -> None:
            if self.path.endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            else:
                self._send(200, {"status": "ok"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.endswith("/chat/completions"):
                self._send(404, {"error": {"message": "not found"}})
                return
            auth = self.headers.get("Authorization")
            if self.auth_log is not None:
                with open(self.auth_log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"model": body.get("model"), "authorization": auth}) + "\n")
            if self.echo_auth_every and next(self.posts) % self.echo_auth_every == 0:
                self._send(400, {"error": {"message": f"invalid request; credentials: {auth}"}})
                return
            if self.bucket is not None:
                status, self.rate_headers = self.bucket.take()
                if status == 429:
                    self._send(429, {"error": {"message": "rate limit reached for requests",
                                               "type": "requests",
                                               "code": "rate_limit_exceeded"}})
                    return
            if latency:
                time.sleep(latency)
            fault = faults.draw()
            if fault == "429":
                self._send(429, {"error": {"message": "rate limited (injected)"}})
                return
            if fault == "500":
                self._send(500, {"error": {"message": "server error (injected)"}})
                return
            if fault == "delay":
                time.sleep(delay)
            if log is not None and fault != "delay":
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(body) + "\n")
            text = "" if fault == "empty" else script.respond(body)
            finish = "stop"
            if (body.get("max_tokens") or 0) < length_below:
                text, finish = text[: len(text) // 2], "length"
            data = json.dumps(completion_body(body, text, finish)).encode()
            if fault == "truncated":
                data = data[: len(data) // 2]
            try:
                self._send_raw(200, data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): that is the point of the delay fault

    return Handler


class Server(ThreadingHTTPServer):
    """A listen backlog a provider would have: socketserver's default of 5 drops the SYNs of a
    burst of new connections (256 at once from a client at concurrency 256), and each dropped
    one is retried by TCP only after a second."""

    request_queue_size = 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log")
    parser.add_argument("--plan", default="harmful,good")
    parser.add_argument("--faults", type=float, default=0.0)
    parser.add_argument("--fault-kinds", default="429,500,delay,truncated,empty")
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--length-below", type=int, default=0)
    parser.add_argument("--follows-form", action="store_true")
    parser.add_argument("--auth-log")
    parser.add_argument("--echo-auth-every", type=int, default=0)
    parser.add_argument("--deaf-model", action="append", default=[])
    parser.add_argument("--rpm", type=int, default=0)
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument("--package", action="store_true",
                        help="answer from tests/scripted_package.py (skill packages)")
    parser.add_argument("--game", action="store_true",
                        help="the target plays tests/agents/counter_env.py (scripted_game.py)")
    args = parser.parse_args()
    script = Script(analyst_plan=args.plan.split(","), follows_form=args.follows_form,
                    deaf_models=tuple(args.deaf_model))
    if args.package:
        from scripted_package import PackageScript

        script = PackageScript(analyst_plan=args.plan.split(","))  # type: ignore[assignment]
    if args.game:
        from scripted_game import GameScript

        script = GameScript(analyst_plan=args.plan.split(","))
    log = Path(args.log) if args.log else None
    stats = Path(args.log + ".faults.json") if args.log else None
    faults = Faults(args.faults, args.fault_kinds.split(","), args.seed, stats)
    handler = make_handler(script, log, faults, args.delay, args.latency, args.length_below)
    handler.auth_log = Path(args.auth_log) if args.auth_log else None
    handler.echo_auth_every = args.echo_auth_every
    if args.rpm:
        handler.bucket = RequestBucket(args.rpm, args.rate_window,
                                       Path(args.log + ".arrivals.jsonl") if args.log else None)
    server = Server(("127.0.0.1", 0), handler)
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
