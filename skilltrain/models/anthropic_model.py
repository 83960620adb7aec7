"""Claude through Anthropic's own Messages API (`anthropic:MODEL`), with the official SDK.

Talking to Claude natively rather than through an OpenAI-compatible proxy is what buys prompt
caching (the skill prefix is written once, then read at a fraction of the input price), an
extended-thinking budget per role, and Anthropic's own rate-limit headers. The request and reply
translation lives in anthropic_wire.py; this module is the HTTP side: deadlines, the mapping of
the SDK's errors onto ModelError kinds, and the role's rate limiter (limits.py: rpm / tpm, the
`anthropic-ratelimit-*` headers, the adaptive concurrency), all as for the OpenAI backend.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from functools import partial
from typing import Any

import anthropic

from skilltrain.models.anthropic_wire import (
    Capabilities,
    Translated,
    capabilities,
    from_anthropic,
    to_anthropic,
)
from skilltrain.models.base import Completion, ModelError
from skilltrain.models.limits import RateLimiter, RateLimits, Refused, limited_call
from skilltrain.models.openai_compat import (
    CONNECT_TIMEOUT_S,
    _chain,
    _connection_reason,
    retry_after,
)

# The per-limit headers Anthropic sends with every reply; on a 429 without retry-after, the
# latest reset among the exhausted limits is when asking again can succeed.
_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


class AnthropicModel:
    """Speaks POST /v1/messages. Retries are RoleClient's, so the SDK's are off; `timeout` is
    the whole call's deadline (connect: at most CONNECT_TIMEOUT_S), as for OpenAIModel.

    `name` is `anthropic:MODEL`, with `+thinking=N` when a thinking budget is set: the name is
    part of the response cache's key, and a reply given with thinking is not the reply to the
    same request without it. The price lookup ignores the suffix.

    Calls go through `limiter` (limits.py) exactly as OpenAIModel's do: the role's rpm / tpm,
    what the `anthropic-ratelimit-*` headers say is left, a 429's wait, and a concurrency that
    starts at `concurrency` and halves on a 429.
    """

    def __init__(
        self,
        model_id: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        concurrency: int = 8,
        thinking_budget: int | None = None,
        extra_body: dict[str, Any] | None = None,
        limits: RateLimits | None = None,
    ):
        self.model_id = model_id
        self.thinking_budget = thinking_budget
        self.name = f"anthropic:{model_id}" + (f"+thinking={thinking_budget}"
                                               if thinking_budget else "")
        self.caps: Capabilities = capabilities(model_id)
        self.deadline_s = float(timeout)
        self.connect_s = min(CONNECT_TIMEOUT_S, self.deadline_s)
        # An explicit key (a placeholder for keyless local servers) keeps the SDK from looking
        # for credentials in profile files or workload-identity variables.
        self._client = anthropic.AsyncAnthropic(
            base_url=api_root(base_url), api_key=api_key or "not-needed", max_retries=0,
            timeout=anthropic.Timeout(self.deadline_s, connect=self.connect_s))
        self.base_url = str(self._client.base_url)  # for messages: see breaker.endpoint_of
        self.limiter = RateLimiter(limits, concurrency)  # rpm / tpm, headers, 429 back-off
        self._extra_body = dict(extra_body or {})

    async def complete(self, request: dict[str, Any]) -> Completion:
        body = dict(request)
        extra = {**self._extra_body, **body.pop("extra_body", {})}
        sent = to_anthropic(body, self.model_id, self.caps, self.thinking_budget)
        extra = {**sent.extra, **extra}  # the user's extra_body last: it wins
        return await limited_call(self.limiter, body, partial(self._post, sent, extra),
                                  lambda message: from_anthropic(message.to_dict(), sent))

    async def _post(self, sent: Translated, extra: dict[str, Any]) -> tuple[Any, Any]:
        """The reply (the SDK's Message) and its headers, read through `with_raw_response`
        since the plain `create` hides the headers the limiter reads; a failure as a
        ModelError, or as Refused (with the reply's headers) when a reply came back."""
        headers = None
        try:
            async with asyncio.timeout(self.deadline_s):
                raw = await self._client.messages.with_raw_response.create(
                    **sent.kwargs, extra_body=extra or None)
                headers = raw.headers
                return await raw.parse(), headers
        except (anthropic.APITimeoutError, TimeoutError) as exc:
            raise ModelError("timeout", self._late(exc)) from None
        except anthropic.APIConnectionError as exc:
            raise ModelError("connection", _connection_reason(exc)) from None
        except anthropic.RateLimitError as exc:
            headers = exc.response.headers
            raise Refused(ModelError("rate_limit", _said(exc),
                                     retry_after=rate_limit_wait(headers)), headers) from None
        except anthropic.APIStatusError as exc:
            raise Refused(self._status_error(exc, sent), exc.response.headers) from None
        except (anthropic.APIResponseValidationError, json.JSONDecodeError,
                ValueError) as exc:  # a garbled body, e.g. from a proxy
            raise Refused(ModelError("bad_response", f"unreadable response ({exc})"),
                          headers) from None

    def _status_error(self, exc: anthropic.APIStatusError, sent: Translated) -> ModelError:
        code = exc.status_code
        if code >= 500:  # 529 is Anthropic's "overloaded"
            return ModelError("server_error", f"HTTP {code}: {_said(exc)}",
                              retry_after=rate_limit_wait(exc.response.headers))
        if code in (401, 403, 404):
            return ModelError("fatal", f"HTTP {code} from model {self.name!r}: {_said(exc)}")
        if code == 400:
            return self._refused(_said(exc), sent)
        return ModelError("http_error", f"HTTP {code}: {_said(exc)}")

    def _refused(self, said: str, sent: Translated) -> ModelError:
        """A 400 that names a setting this model does not take. A sampling temperature or a
        forced tool choice is ours to drop: the capability is turned off for this model and the
        call is retried ("adapted", counted with the retries). A thinking budget is the user's
        setting, so the run stops with what to change instead of quietly thinking less."""
        low = said.lower()
        if "thinking" in low and "thinking" in sent.kwargs:
            return ModelError("fatal", f"HTTP 400 from model {self.name!r}: {said}; check the "
                              "role's thinking_budget (Claude 4.7 and later take none: they "
                              "think adaptively)")
        if sent.sampled and "temperature" in low:
            self.caps.sampling = False
            return ModelError("adapted", f"{self.model_id} takes no temperature ({said}); "
                              "sent without it from now on")
        if sent.forced and ("tool_choice" in low or "forc" in low):
            self.caps.forced_tool = False
            return ModelError("adapted", f"{self.model_id} takes no forced tool choice "
                              f"({said}); structured replies ask for the tool from now on")
        return ModelError("http_error", f"HTTP 400: {said}")

    def _late(self, exc: BaseException) -> str:
        if any(type(e).__name__ == "ConnectTimeout" for e in _chain(exc)):
            return f"could not connect within {self.connect_s:g}s"
        return f"no reply within the {self.deadline_s:g}s deadline"

    async def aclose(self) -> None:
        await self._client.close()


def api_root(base_url: str | None) -> str | None:
    """The SDK appends /v1/messages itself; a base URL given the OpenAI way (ending in /v1, as
    LocalServer.base_url does) would otherwise ask for /v1/v1/messages."""
    if base_url is None:
        return None
    url = base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def _said(exc: anthropic.APIStatusError) -> str:
    return str(getattr(exc, "api_message", None) or exc.message)


def rate_limit_wait(headers: Any) -> float | None:
    """Seconds to wait: `retry-after` (or -ms) when sent, else until the latest reset of the
    `anthropic-ratelimit-*` limits that are exhausted (their resets are RFC 3339 times)."""
    wait = retry_after(headers)
    if wait is not None:
        return wait
    try:
        resets = [headers.get(f"anthropic-ratelimit-{name}-reset") for name in _LIMITS
                  if headers.get(f"anthropic-ratelimit-{name}-remaining") == "0"]
        now = datetime.now(timezone.utc)
        waits = [(datetime.fromisoformat(r.replace("Z", "+00:00")) - now).total_seconds()
                 for r in resets if r]
    except (AttributeError, TypeError, ValueError):
        return None
    return max(0.0, max(waits)) if waits else None
