"""A scripted target for the environment harness (tests/agents/counter_env.py), beside
tests/scripted.py (whose optimizer it reuses): the target plays the counter game with `inc`
only when its system prompt states GOOD_RULE, else it plays `dec` and never reaches the goal.

The same `GameScript.respond(request)` drives the in-process FakeModel (unit tests) and the
HTTP server (tests/e2e/scripted_server.py --game).
"""

from __future__ import annotations

from typing import Any

from scripted import GOOD_RULE, Script


class GameScript(Script):
    def respond(self, request: dict[str, Any]) -> str:
        if request.get("response_format"):
            return super().respond(request)
        with self._lock:
            self.requests.append(request)
        system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
        if GOOD_RULE in system:
            return "The goal is above the counter.\nACTION: inc"
        return "Counting down seems right.\nACTION: dec"
