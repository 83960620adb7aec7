"""An in-process test double: a ChatModel whose replies come from a Python function.

Like DSPy's dummy LM, it lets unit tests drive the whole loop without a network, while the
request it receives is exactly what an HTTP endpoint would get.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skilltrain.models.base import Completion
from skilltrain.records import Usage

Responder = Callable[[dict[str, Any]], "str | Completion | Exception"]


class FakeModel:
    def __init__(self, respond: Responder, name: str = "fake"):
        self.name = name
        self._respond = respond
        self.requests: list[dict[str, Any]] = []

    async def complete(self, request: dict[str, Any]) -> Completion:
        self.requests.append(request)
        reply = self._respond(request)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, Completion):
            return reply
        prompt_chars = sum(len(str(m.get("content") or "")) for m in request["messages"])
        return Completion(
            text=reply,
            usage=Usage(prompt_tokens=prompt_chars // 4 + 1, completion_tokens=len(reply) // 4 + 1,
                        calls=1),
        )


def system_prompt(request: dict[str, Any]) -> str:
    for m in request["messages"]:
        if m.get("role") == "system":
            return str(m.get("content") or "")
    return ""


def last_user(request: dict[str, Any]) -> str:
    for m in reversed(request["messages"]):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def schema_name(request: dict[str, Any]) -> str | None:
    fmt = request.get("response_format") or {}
    return (fmt.get("json_schema") or {}).get("name")
