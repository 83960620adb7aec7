"""Any OpenAI-compatible endpoint through the official async SDK."""

from __future__ import annotations

import asyncio
import importlib
import math
from functools import partial
from typing import Any

import openai

from skilltrain.models.base import Completion, ModelError
from skilltrain.models.http_post import AiohttpPoster, StatusError, aiohttp_installed
from skilltrain.models.http_post import connection_reason as _connection_reason
from skilltrain.models.limits import RateLimiter, RateLimits, Refused, limited_call
from skilltrain.records import Usage

# A TCP connect that takes longer than this is a dead host or network, not a slow model.
CONNECT_TIMEOUT_S = 10.0
# Connections per SDK client. The SDK's HTTP pool scans every connection it holds each time a
# request is sent and each time a response is closed, probing idle sockets as it goes, so a
# call's cost grows with the pool: at concurrency 256 on one client that scan took 38% of the
# client's time (cProfile, bench/engine.py's setting). Calls are spread over
# ceil(concurrency / 16) clients instead, each with a pool of at most 16 kept-alive connections.
POOL_SIZE = 16
TRANSPORTS = ("auto", "aiohttp", "sdk")


def pick_transport(asked: str) -> str:
    """`auto`: aiohttp where it is installed (http_post.py says why), else the SDK's client.
    Raises ValueError for an unknown name, or aiohttp asked for and missing."""
    if asked not in TRANSPORTS:
        raise ValueError(f"transport {asked!r}: expected one of {', '.join(TRANSPORTS)}")
    if asked == "aiohttp" and not aiohttp_installed():
        raise ValueError("transport aiohttp: aiohttp is not installed (pip install aiohttp)")
    if asked == "auto":
        return "aiohttp" if aiohttp_installed() else "sdk"
    return asked


def describe_deadline(timeout: float) -> str:
    """The per-call limits as shown to the user before calls start (and in error messages)."""
    return f"deadline {timeout:g}s per call (connect {min(CONNECT_TIMEOUT_S, timeout):g}s)"


def deadline_line(timeouts: dict[str, float]) -> str:
    """One line for the start of a run: each role's deadline, once when they agree."""
    if len(set(timeouts.values())) == 1:
        return f"model calls: {describe_deadline(next(iter(timeouts.values())))}"
    return "model calls: " + "; ".join(f"{role} {describe_deadline(t)}"
                                       for role, t in timeouts.items())


def _http_library() -> Any:
    """The HTTP library the installed SDK is built on (httpx; httpx2 in later releases): its
    Response is what `post(cast_to=...)` hands back raw, its Limits size each pool."""
    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__
                if not c.__module__.startswith("openai"))
    return importlib.import_module(base.__module__.split(".")[0])


class OpenAIModel:
    """Speaks /v1/chat/completions. Retries are ours (see RoleClient), so the SDK's are off.

    `timeout` is the whole call's deadline, not only the SDK's read timeout, which restarts
    with every byte: a server that accepts and never answers, or trickles, must still end the
    call, as a "timeout" infrastructure failure. Connecting gets at most CONNECT_TIMEOUT_S.

    Calls go through `limiter` (limits.py): the configured rpm / tpm, the server's rate-limit
    headers, and a concurrency that starts at `concurrency`, halves on a 429 and recovers.
    The request is posted as the JSON it already is, through the SDK's `post` (auth, base URL,
    error types as for `chat.completions.create`), and the reply read as JSON with its headers:
    the typed path re-validates every request body against the SDK's types and builds a typed
    reply, and hides the headers. Measured at zero latency, concurrency 64 (bench/engine.py):
    the bare SDK's `create` 285 requests/s, `skilltrain.evaluate` through this path 491 tasks/s.
    `transport` picks how the POST travels: `sdk` (the SDK's client, as above) or `aiohttp`
    (http_post.py, cheaper per call; the default where aiohttp is installed). Both give the
    same replies, error kinds and messages.
    """

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        concurrency: int = 8,
        extra_body: dict[str, Any] | None = None,
        limits: RateLimits | None = None,
        transport: str = "auto",
    ):
        self.name = name
        self.transport = pick_transport(transport)
        self.deadline_s = float(timeout)
        self.connect_s = min(CONNECT_TIMEOUT_S, self.deadline_s)
        http = _http_library()
        self._response_type = http.Response
        # aiohttp: one SDK client kept only for its base URL resolution and unused pool
        pools = 1 if self.transport == "aiohttp" else max(1, math.ceil(concurrency / POOL_SIZE))
        size = math.ceil(concurrency / pools)
        # One TLS context for all the pools: building one reads the CA bundle, and 16 pools
        # (concurrency 256) took 0.53-0.59 s to open with one each, 0.03-0.07 s sharing one.
        tls = {"verify": http.create_ssl_context()} if hasattr(http, "create_ssl_context") \
            else {}
        self._clients = [openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
            timeout=openai.Timeout(self.deadline_s, connect=self.connect_s),
            http_client=openai.DefaultAsyncHttpxClient(
                limits=http.Limits(max_connections=size, max_keepalive_connections=size),
                **tls))
            for _ in range(pools)]
        self._load = [0] * pools  # calls in flight per client
        self.base_url = str(self._clients[0].base_url)  # for messages: see breaker.endpoint_of
        self._aiohttp = AiohttpPoster(
            self.base_url, api_key or "not-needed", deadline_s=self.deadline_s,
            connect_s=self.connect_s, concurrency=concurrency,
            user_agent=f"skilltrain (openai-python {openai.__version__})") \
            if self.transport == "aiohttp" else None
        self.limiter = RateLimiter(limits, concurrency)
        self._extra_body = dict(extra_body or {})

    async def complete(self, request: dict[str, Any]) -> Completion:
        body = dict(request)
        extra = {**self._extra_body, **body.pop("extra_body", {})}
        return await limited_call(self.limiter, body, partial(self._post, {**body, **extra}),
                                  reply_completion)

    async def _post(self, body: dict[str, Any]) -> tuple[Any, Any]:
        """The reply's JSON and headers, over aiohttp or on the least loaded SDK client; a
        failure as a ModelError, or as Refused (with the reply's headers) when a reply came
        back."""
        if self._aiohttp is not None:
            try:
                return await self._aiohttp.post("chat/completions", {**body, "model": self.name})
            except StatusError as exc:
                error = self._status_error(exc.status_code, exc.message,
                                           retry_after(exc.headers))
                raise Refused(error, exc.headers) from None
        pool = min(range(len(self._load)), key=self._load.__getitem__)
        self._load[pool] += 1
        try:
            async with asyncio.timeout(self.deadline_s):
                resp = await self._clients[pool].post(
                    "/chat/completions", cast_to=self._response_type,
                    body={**body, "model": self.name})
        except (openai.APITimeoutError, TimeoutError) as exc:
            raise ModelError("timeout", self._late(exc)) from None
        except openai.APIConnectionError as exc:
            raise ModelError("connection", _connection_reason(exc)) from None
        except openai.APIStatusError as exc:
            headers = exc.response.headers
            raise Refused(self._status_error(exc.status_code, exc.message,
                                             retry_after(headers)), headers) from None
        finally:
            self._load[pool] -= 1
        try:
            return resp.json(), resp.headers
        except ValueError as exc:  # a garbled body, e.g. from a proxy (JSONDecodeError too)
            raise Refused(ModelError("bad_response", f"unreadable response ({exc})"),
                          resp.headers) from None

    def _status_error(self, code: int, message: str, wait: float | None) -> ModelError:
        """An error status as a ModelError kind, one mapping for both transports."""
        if code == 429:
            return ModelError("rate_limit", message, retry_after=wait)
        if code >= 500:
            return ModelError("server_error", f"HTTP {code}: {message}", retry_after=wait)
        if code in (401, 403, 404):
            return ModelError("fatal", f"HTTP {code} from model {self.name!r}: {message}")
        return ModelError("http_error", f"HTTP {code}: {message}")

    def _late(self, exc: BaseException) -> str:
        if any(type(e).__name__ == "ConnectTimeout" for e in _chain(exc)):
            return f"could not connect within {self.connect_s:g}s"
        return f"no reply within the {self.deadline_s:g}s deadline"

    async def aclose(self) -> None:
        if self._aiohttp is not None:
            await self._aiohttp.aclose()
        for client in self._clients:
            await client.close()


def reply_completion(data: Any) -> Completion:
    """A chat-completion reply's JSON as a Completion. Only what is used is read, and its
    shape is checked: a body that parsed is not yet a reply (a proxy's error page as JSON, a
    choice without a message)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list):
        raise ModelError("empty_reply", "response has no choices")
    first = choices[0]
    msg = first.get("message") if isinstance(first, dict) else None
    if not isinstance(msg, dict):
        raise ModelError("bad_response", "the reply's first choice has no message")
    tool_calls = []
    for call in msg.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise ModelError("bad_response", "a tool call without a function")
        tool_calls.append({"id": call.get("id"), "type": "function",
                           "function": {"name": function.get("name"),
                                        "arguments": function.get("arguments")}})
    text = msg.get("content") or ""
    if isinstance(text, list):  # content parts: the text ones
        text = "".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
    if not isinstance(text, str):
        raise ModelError("bad_response", "the reply's content is not text")
    if not text.strip() and not tool_calls:
        raise ModelError("empty_reply", "the reply has no content")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Completion(text=text, usage=Usage(prompt_tokens=_count(usage.get("prompt_tokens")),
                                             completion_tokens=_count(
                                                 usage.get("completion_tokens")),
                                             calls=1),
                      tool_calls=tool_calls, finish_reason=first.get("finish_reason"))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from a `retry-after` (seconds or an HTTP date) or `retry-after-ms`
    header; None when absent or unreadable."""
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            from datetime import datetime, timezone
            from email.utils import parsedate_to_datetime

            return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc))
                       .total_seconds())
    except (TypeError, ValueError, AttributeError):
        return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 12:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return seen
