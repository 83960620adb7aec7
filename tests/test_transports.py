"""The two HTTP transports of OpenAIModel (aiohttp and the SDK's client) over real sockets on
127.0.0.1: the same replies, the same ModelError kinds and messages, the same headers for the
limiter, for every way a call can end."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from e2e.scripted_server import completion_body

from skilltrain.config import ModelConfig
from skilltrain.models.base import ModelError
from skilltrain.models.http_post import proxy_for, status_message
from skilltrain.models.openai_compat import OpenAIModel, pick_transport

TRANSPORTS = ("aiohttp", "sdk")
REQUEST = {"messages": [{"role": "user", "content": "What is 1 plus 4?"}], "max_tokens": 16}


class Server:
    """Answers each POST with what `reply` says: (status, body bytes, headers, delay)."""

    def __init__(self) -> None:
        self.reply: Any = lambda body: (200, json.dumps(completion_body(body, "5")).encode(),
                                        {}, 0.0)
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append({"path": self.path, "headers": {
                    k.lower(): v for k, v in self.headers.items()},
                                   "body": body})
                status, data, headers, delay = outer.reply(body)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def call(url: str, transport: str, **kw: Any) -> Any:
    """One complete() on a fresh model; the Completion, or the ModelError it raised."""

    async def go() -> Any:
        model = OpenAIModel("m", base_url=url, api_key="sk-test", transport=transport, **kw)
        try:
            return await model.complete(dict(REQUEST))
        except ModelError as exc:
            return exc
        finally:
            await model.aclose()

    return asyncio.run(go())


def outcome(result: Any) -> tuple:
    if isinstance(result, ModelError):
        return ("error", result.kind, result.message, result.retry_after)
    return ("ok", result.text, result.usage.prompt_tokens, result.finish_reason)


def both(url: str, **kw: Any) -> tuple[tuple, tuple]:
    a, b = (outcome(call(url, t, **kw)) for t in TRANSPORTS)
    return a, b


def test_auto_picks_aiohttp_where_installed_and_names_are_checked() -> None:
    assert pick_transport("auto") == "aiohttp"  # aiohttp is a dependency
    assert pick_transport("sdk") == "sdk"
    with pytest.raises(ValueError, match="expected one of auto, aiohttp, sdk"):
        pick_transport("curl")
    assert ModelConfig(model="m").transport == "auto"


def test_a_reply_is_read_the_same_and_the_request_is_the_same(server: Server) -> None:
    a, b = both(server.url)
    assert a == b and a[0] == "ok" and a[1] == "5"
    first, second = server.seen
    assert first["path"] == second["path"] == "/v1/chat/completions"
    assert first["body"] == second["body"] == {**REQUEST, "model": "m"}
    for seen in server.seen:
        assert seen["headers"]["authorization"] == "Bearer sk-test"
        assert seen["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize("status,kind", [(400, "http_error"), (404, "fatal"),
                                         (500, "server_error"), (429, "rate_limit")])
def test_error_statuses_map_to_the_same_kind_message_and_wait(server: Server, status: int,
                                                              kind: str) -> None:
    error = json.dumps({"error": {"message": f"nope {status}"}}).encode()
    server.reply = lambda body: (status, error, {"retry-after": "7"}, 0.0)
    a, b = both(server.url)
    assert a == b
    assert a[1] == kind and f"Error code: {status} - nope {status}" in a[2]
    assert a[3] == (7.0 if status in (429, 500) else None)


def test_a_garbled_body_is_a_bad_response_on_both(server: Server) -> None:
    server.reply = lambda body: (200, b"{not json", {}, 0.0)
    a, b = both(server.url)
    assert a[:2] == b[:2] == ("error", "bad_response")


def test_refused_and_late_replies_are_worded_the_same() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    try:
        a, b = both(url)
    finally:
        sock.close()
    assert a == b == ("error", "connection", "connection refused", None)


def test_a_reply_past_the_deadline_is_a_timeout(server: Server) -> None:
    server.reply = lambda body: (200, json.dumps(completion_body(body, "5")).encode(), {}, 1.5)
    a, b = both(server.url, timeout=0.5)
    assert a == b == ("error", "timeout", "no reply within the 0.5s deadline", None)


def test_rate_limit_headers_reach_the_limiter_on_both(server: Server) -> None:
    """remaining 0, reset 1s: the second call waits for the server's quota on both."""
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    server.reply = lambda body: (200, json.dumps(completion_body(body, "5")).encode(),
                                 headers, 0.0)
    seen = []
    for transport in TRANSPORTS:
        async def go(t: str = transport) -> None:
            model = OpenAIModel("m", base_url=server.url, api_key="k", transport=t)
            try:
                await model.complete(dict(REQUEST))
                await model.complete(dict(REQUEST))
                stats = model.limiter.stats
                seen.append((stats.waits, sorted(stats.waits_by_reason), stats.wait_s > 0.5))
            finally:
                await model.aclose()

        asyncio.run(go())
    assert seen[0] == seen[1] and seen[0][0] >= 1 and seen[0][2]


def test_a_base_url_with_credentials_and_a_query_keeps_the_query_drops_the_credentials(
        server: Server) -> None:
    url = server.url.replace("http://", "http://user:secret@") + "?api-version=2"
    a, b = both(url)
    assert a == b and a[0] == "ok"
    # the SDK's client (the second) posts to /v1/?api-version=2chat/completions: aiohttp's
    # path keeps the query where it belongs
    assert server.seen[0]["path"] == "/v1/chat/completions?api-version=2"
    for seen in server.seen:
        assert "secret" not in json.dumps(seen["headers"])


def test_organisation_and_project_come_from_the_environment(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    assert outcome(call(server.url, "aiohttp"))[0] == "ok"
    headers = server.seen[-1]["headers"]
    assert headers["openai-organization"] == "org-1" and headers["openai-project"] == "proj-1"


def test_one_model_serves_several_event_loops(server: Server) -> None:
    """A Trainer runs each fit in its own asyncio.run: the session follows the loop."""
    model = OpenAIModel("m", base_url=server.url, api_key="k", transport="aiohttp")
    for _ in range(3):
        assert asyncio.run(model.complete(dict(REQUEST))).text == "5"
    asyncio.run(model.aclose())
    assert len(server.seen) == 3


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from yarl import URL

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert proxy_for(URL("https://api.openai.com/v1")) == "http://proxy.example:3128"
    assert proxy_for(URL("https://internal.example/v1")) is None
    assert proxy_for(URL("http://plain.example/v1")) is None  # no HTTP_PROXY set


def test_status_message_reads_the_error_message_like_the_sdk() -> None:
    assert status_message(400, '{"error": {"message": "bad field"}}') == \
        "Error code: 400 - bad field"
    assert status_message(502, "<html>gateway</html>") == "Error code: 502"
    assert status_message(400, '{"message": "top level"}') == "Error code: 400 - top level"
