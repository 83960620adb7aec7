"""Any OpenAI-compatible endpoint through the official async SDK."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai

from skilltrain.models.base import Completion, ModelError
from skilltrain.records import Usage


class OpenAIModel:
    """Speaks /v1/chat/completions. Retries are ours (see RoleClient), so the SDK's are off."""

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
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0
        )
        self._limit = asyncio.Semaphore(concurrency)
        self._extra_body = dict(extra_body or {})

    async def complete(self, request: dict[str, Any]) -> Completion:
        body = dict(request)
        extra = {**self._extra_body, **body.pop("extra_body", {})}
        async with self._limit:
            try:
                resp = await self._client.chat.completions.create(
                    model=self.name, extra_body=extra or None, **body
                )
            except openai.APITimeoutError as exc:
                raise ModelError("timeout", str(exc)) from None
            except openai.APIConnectionError as exc:
                raise ModelError("connection", str(exc)) from None
            except openai.RateLimitError as exc:
                raise ModelError("rate_limit", str(exc)) from None
            except openai.APIStatusError as exc:
                code = exc.status_code
                if code >= 500:
                    raise ModelError("server_error", f"HTTP {code}: {exc.message}") from None
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

    async def aclose(self) -> None:
        await self._client.close()
