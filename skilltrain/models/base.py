"""The ChatModel protocol every backend satisfies, and the errors that mark infrastructure
failures (as opposed to wrong answers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from skilltrain.records import Usage

RETRYABLE = frozenset({"timeout", "rate_limit", "server_error", "connection", "empty_reply",
                       "bad_response", "adapted"})


class InfrastructureFailure(Exception):
    """A run or evaluation that cannot give a result because the infrastructure failed, not
    the input (an endpoint that cannot be reached, nothing that could be scored). The CLI
    exits 1 for these and 2 for bad input, so a script can tell "fix your config" from "try
    again later"; no caller may turn one into a silent None score."""


class ModelError(Exception):
    """An infrastructure failure: the model did not give a usable reply.

    `kind` is one of: timeout, rate_limit, server_error, connection, empty_reply, bad_response
    (a body that is not the protocol's JSON, e.g. cut off by a proxy), invalid_output,
    http_error (a 4xx that retrying will not fix), truncated (a structured reply cut at the
    token limit even after one retry with a larger limit: asking again the same way cannot
    fix it, a higher `max_tokens` can), fatal (authentication or unknown model: the run
    cannot go on, so it is raised rather than counted; an unreachable endpoint, see
    breaker.EndpointDown, is fatal too), unreachable (not sent: the role's circuit breaker
    opened mid-run and the run is stopping), adapted (the endpoint refused a request setting
    this model does not take, e.g. `temperature` on newer Claude models; the backend has stopped
    sending it, so the retry differs; it is counted with the retries in the run's summary).
    """

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        # Seconds the server asked us to wait (a `retry-after` header on a 429 or 503):
        # the retry loop waits at least this long instead of its own backoff.
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass
class Completion:
    """A model reply. `message` is the assistant message as sent back (with any tool calls).

    `finish_reason` is the protocol's reason the reply ended ("stop", "length", "tool_calls",
    ...; None when unknown, e.g. an old cache entry): "length" means it was cut at the token
    limit, which structured calls must tell apart from a reply that is merely wrong.
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    parsed: Any = None
    cached: bool = False
    finish_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "usage": self.usage.model_dump(), "tool_calls": self.tool_calls,
                "finish_reason": self.finish_reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        return cls(text=data["text"], usage=Usage(**data["usage"]),
                   tool_calls=data.get("tool_calls") or [],
                   finish_reason=data.get("finish_reason"))


@runtime_checkable
class ChatModel(Protocol):
    """One endpoint. `request` is an OpenAI-style chat request body without `model`."""

    name: str

    async def complete(self, request: dict[str, Any]) -> Completion: ...
