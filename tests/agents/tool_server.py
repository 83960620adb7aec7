"""A scripted OpenAI-compatible server that speaks tool calls, for the agent harness tests.

A test gives a policy: a function from the request body to a reply (text and/or tool calls).
The server records every request body, so a test can check what came back to the model: tool
results as `role: tool` messages with the right `tool_call_id`, errors included.

    with ToolServer(policy) as srv:
        model = OpenAIModel("scripted", base_url=srv.base_url, api_key="x")
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Policy = Callable[[dict[str, Any]], dict[str, Any]]


def call(name: str, arguments: dict[str, Any] | str, call_id: str) -> dict[str, Any]:
    """One tool call in the OpenAI response shape."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def reply(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None
          ) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m.get("role") == "tool"]


class ToolServer:
    """ThreadingHTTPServer on 127.0.0.1 with a free port, answering from `policy`."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.requests.append(body)
                try:
                    message = owner.policy(body)
                except Exception as exc:  # a broken policy shows up as a 500 in the test
                    self._send(500, {"error": {"message": f"policy failed: {exc!r}"}})
                    return
                if "error_status" in message:
                    self._send(message["error_status"], {"error": {"message": "scripted"}})
                    return
                finish = "tool_calls" if message.get("tool_calls") else "stop"
                self._send(200, {
                    "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", "scripted"),
                    "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                              "total_tokens": 15},
                })

        return Handler

    def __enter__(self) -> ToolServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def solve_once(code: str, skill_text: str, task: Any) -> Any:
    """One agent-harness rollout against a ToolServer whose model runs `code` with the python
    tool, then answers FINAL: the scripted solver both spreadsheet tests use."""
    import asyncio

    from skilltrain.harness.agent import AgentHarness
    from skilltrain.models.client import CallSettings, RoleClient
    from skilltrain.models.meter import Meter
    from skilltrain.models.openai_compat import OpenAIModel
    from skilltrain.skill import Skill

    def policy(body: dict[str, Any]) -> dict[str, Any]:
        if not tool_messages(body):
            return reply(tool_calls=[call("python", {"code": code}, "s1")])
        return reply("FINAL: done")

    async def go() -> Any:
        with ToolServer(policy) as srv:
            model = OpenAIModel("scripted", base_url=srv.base_url, api_key="x")
            client = RoleClient(model, "target", Meter(), settings=CallSettings(retries=0))
            try:
                return await AgentHarness().run(Skill(skill_text), task, client)
            finally:
                await model.aclose()

    return asyncio.run(go())


# The fixture's SpreadsheetBench task solved in code (D = B * C on each case's Sales sheet);
# tests replace OFF with "" (right), "+ 1" (wrong) or a tiny offset (rounds the same).
SALES_SOLVE = ("import openpyxl\n"
               "for k in (1, 2):\n"
               "    wb = openpyxl.load_workbook(f'case{k}/input.xlsx'); ws = wb['Sales']\n"
               "    for r in range(2, ws.max_row + 1):\n"
               "        ws.cell(row=r, column=4, value=ws.cell(row=r, column=2).value"
               " * ws.cell(row=r, column=3).value OFF)\n"
               "    wb.save(f'case{k}/output.xlsx')\n"
               "print('saved both cases')\n")
