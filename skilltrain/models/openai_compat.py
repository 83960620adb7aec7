"""Any OpenAI-compatible endpoint through the official async SDK."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from typing import Any

import openai

from skilltrain.models.base import Completion, ModelError
from skilltrain.records import Usage

# A TCP connect that takes longer than this is a dead host or network, not a slow model.
CONNECT_TIMEOUT_S = 10.0


def describe_deadline(timeout: float) -> str:
    """The per-call limits as shown to the user before calls start (and in error messages)."""
    return f"deadline {timeout:g}s per call (connect {min(CONNECT_TIMEOUT_S, timeout):g}s)"


def deadline_line(timeouts: dict[str, float]) -> str:
    """One line for the start of a run: each role's deadline, once when they agree."""
    if len(set(timeouts.values())) == 1:
        return f"model calls: {describe_deadline(next(iter(timeouts.values())))}"
    return "model calls: " + "; ".join(f"{role} {describe_deadline(t)}"
                                       for role, t in timeouts.items())


class OpenAIModel:
    """Speaks /v1/chat/completions. Retries are ours (see RoleClient), so the SDK's are off.

    `timeout` is the whole call's deadline, not only the SDK's read timeout, which restarts
    with every byte: a server that accepts and never answers, or trickles, must still end the
    call, as a "timeout" infrastructure failure. Connecting gets at most CONNECT_TIMEOUT_S.
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
    ):
        self.name = name
        self.deadline_s = float(timeout)
        self.connect_s = min(CONNECT_TIMEOUT_S, self.deadline_s)
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
            timeout=openai.Timeout(self.deadline_s, connect=self.connect_s))
        self.base_url = str(self._client.base_url)  # for messages: see breaker.endpoint_of
        self._limit = asyncio.Semaphore(concurrency)
        self._extra_body = dict(extra_body or {})

    async def complete(self, request: dict[str, Any]) -> Completion:
        body = dict(request)
        extra = {**self._extra_body, **body.pop("extra_body", {})}
        async with self._limit:
            try:
                async with asyncio.timeout(self.deadline_s):
                    resp = await self._client.chat.completions.create(
                        model=self.name, extra_body=extra or None, **body
                    )
            except (openai.APITimeoutError, TimeoutError) as exc:
                raise ModelError("timeout", self._late(exc)) from None
            except openai.APIConnectionError as exc:
                raise ModelError("connection", _connection_reason(exc)) from None
            except openai.RateLimitError as exc:
                raise ModelError("rate_limit", str(exc),
                                 retry_after=retry_after(exc.response.headers)) from None
            except openai.APIStatusError as exc:
                code = exc.status_code
                if code >= 500:
                    raise ModelError("server_error", f"HTTP {code}: {exc.message}",
                                     retry_after=retry_after(exc.response.headers)) from None
                if code in (401, 403, 404):
                    raise ModelError("fatal", f"HTTP {code} from model {self.name!r}: "
                                     f"{exc.message}") from None
                raise ModelError("http_error", f"HTTP {code}: {exc.message}") from None
            except (json.JSONDecodeError, ValueError) as exc:  # garbled body from a proxy
                raise ModelError("bad_response", f"unreadable response ({exc})") from None
        if not getattr(resp, "choices", None):
            raise ModelError("empty_reply", "response has no choices")
        msg = resp.choices[0].message
        tool_calls = [
            {"id": c.id, "type": "function",
             "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in (msg.tool_calls or [])
        ]
        text = msg.content or ""
        if not text.strip() and not tool_calls:
            raise ModelError("empty_reply", "the reply has no content")
        u = resp.usage
        usage = Usage(
            prompt_tokens=getattr(u, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(u, "completion_tokens", 0) or 0,
            calls=1,
        )
        return Completion(text=text, usage=usage, tool_calls=tool_calls,
                          finish_reason=getattr(resp.choices[0], "finish_reason", None))

    def _late(self, exc: BaseException) -> str:
        if any(type(e).__name__ == "ConnectTimeout" for e in _chain(exc)):
            return f"could not connect within {self.connect_s:g}s"
        return f"no reply within the {self.deadline_s:g}s deadline"

    async def aclose(self) -> None:
        await self._client.close()


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


def _connection_reason(exc: BaseException) -> str:
    """The SDK says only "Connection error."; the cause it wraps says why, in words a user can
    act on (the breaker's message quotes it)."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, socket.gaierror):
            return f"name not resolved ({e.strerror or e})"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == \
                errno.ECONNREFUSED:
            return "connection refused"
    detail = next((str(e) for e in reversed(chain) if str(e)), "")
    return f"connection failed ({' '.join(detail.split())[:160]})" if detail else \
        "connection failed"
