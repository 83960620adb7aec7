"""The agent harness: a multi-turn, tool-using loop with the skill in the system prompt.

Each task gets a fresh sandboxed workspace holding its attachments. The model acts through tools
(by default `python`, `read_file`, `list_files`, `write_file`; `builtin` picks others of
harness/tools.py, such as `glob` and `grep`; plus the user's typed functions) until it
answers without a tool call or the turn limit is reached; with `single_shot`, the model gets
exactly one reply, whose calls run once without their results coming back (SpreadsheetBench's
single-shot setting; the record keeps the output). Two protocols:

- `tools`: the OpenAI tool-calling protocol (`tools=[...]` in the request, `tool_calls` back,
  results as `role: tool` messages with the call's id).
- `text`: for models whose server does not return native tool calls (the embedded Qwen2.5-Coder
  0.5B writes its calls as JSON text instead). The model writes ```python blocks (run with the
  `python` tool) or JSON calls `{"name": ..., "arguments": {...}}` in a ```json block or between
  <tool_call> tags; results come back as a user message; `FINAL: <answer>` ends the run.

The trajectory records every assistant message (with its tool calls), every observation (with
an `error` flag when the tool failed), and harness events (turn limit, the workspace's files at
the end), each string cut in the middle to `trajectory_chars`. Model failures other than `fatal`
end the rollout with `error` set and no answer; tool failures are observations for the model.

The answer is the final message (the text after `FINAL:` when present), unless a collector
turns the workspace into the answer: the harness's `collect` callable, else the task's
`meta["collect"]` naming one as "module:function". A collector is called as
`collect(task, workspace, final_text) -> str`; the spreadsheet suite's reads the output
workbook's answer cells into a JSON string, so rollouts stay plain JSON.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from skilltrain.data import Task
from skilltrain.harness.sandbox import Limits, Sandbox, SandboxError, clip_middle
from skilltrain.harness.tools import BUILTIN_TOOLS, Tool, ToolError, as_tool, workspace_tools
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout, Usage
from skilltrain.skill import Skill

Collector = Callable[[Task, Path, str], str]

TOOLS_INSTRUCTIONS = """\
You are an agent working in a folder that holds the task's files. Use the tools to inspect files,
run Python code and write files. Work step by step: call a tool, read its result, continue.
When the task is done, reply without a tool call, giving your final answer after "FINAL:"."""

TEXT_INSTRUCTIONS = """\
You are an agent working in a folder that holds the task's files. To run Python code there, write
it in a ```python code block; you will get its output in the next message. Each block runs in a
fresh process: files persist, variables do not, so print what you need to see. Other tools are
called with a JSON object {"name": "TOOL", "arguments": {...}} between <tool_call> and
</tool_call>. Tools: {tools}.
When the task is done, write a line starting with "FINAL:" followed by your final answer."""

# Single-shot (`single_shot=True`): one reply, its calls run once, nothing comes back.
SINGLE_SHOT_TOOLS_INSTRUCTIONS = """\
You are an agent working in a folder that holds the task's files. You have exactly one reply:
the tool calls in it run once, in order, after you reply, and you will not see their results.
So do the whole task in that reply, usually with one complete program for the python tool that
needs no second look. If the task asks for an answer, also give it after "FINAL:"."""

SINGLE_SHOT_TEXT_INSTRUCTIONS = """\
You are an agent working in a folder that holds the task's files. You have exactly one reply.
Write one complete Python program in a ```python code block: it runs once in that folder after
you reply and you will not see its output, so it must do the whole task by itself. Other tools
may be called once with a JSON object {"name": "TOOL", "arguments": {...}} between <tool_call>
and </tool_call>; their results are not shown either. Tools: {tools}.
If the task asks for an answer, write a line starting with "FINAL:" followed by it."""

_CODE_RE = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL)
_JSON_BLOCK_RE = re.compile(r"```json[ \t]*\n(.*?)```|<tool_call>(.*?)</tool_call>", re.DOTALL)
_FINAL_RE = re.compile(r"^[\W_]*final(?:\s+answer)?[*_\s]*:[*_\s]*(.*)",
                       re.DOTALL | re.MULTILINE | re.IGNORECASE)


def final_answer(text: str) -> tuple[str, bool]:
    """The answer in a final message: what follows `FINAL:` if present, else the whole text."""
    m = _FINAL_RE.search(text)
    return (m.group(1).strip(), True) if m else (text.strip(), False)


def parse_text_actions(text: str) -> list[dict[str, Any]]:
    """Tool calls written as text, in order: ```python blocks and JSON `{name, arguments}`
    objects (in ```json blocks or <tool_call> tags). Returned in the OpenAI tool_calls shape."""
    found: list[tuple[int, str, str]] = []
    for m in _CODE_RE.finditer(text):
        if m.group(1).strip():
            found.append((m.start(), "python", json.dumps({"code": m.group(1)})))
    for m in _JSON_BLOCK_RE.finditer(text):
        try:
            call = json.loads(m.group(1) or m.group(2) or "")
        except json.JSONDecodeError:
            continue
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            args = call.get("arguments", call.get("parameters", {}))
            found.append((m.start(), call["name"],
                          args if isinstance(args, str) else json.dumps(args)))
    found.sort(key=lambda item: item[0])
    return [{"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": args}}
            for i, (_, name, args) in enumerate(found)]


def attach_files(workspace: Path, files: Mapping[str, Any]) -> list[str]:
    """Write a task's attachments (`meta["files"]`) into the workspace; returns their names.

    A value may be bytes, text (written as UTF-8), `{"base64": ...}` or `{"text": ...}`: the
    dict forms keep tasks loadable from JSON files.
    """
    names = []
    for name, value in files.items():
        target = (workspace / name).resolve()
        if workspace not in target.parents:
            raise ValueError(f"attachment {name!r}: must be a relative path inside the workspace")
        if isinstance(value, Mapping) and "base64" in value:
            data = base64.b64decode(value["base64"])
        elif isinstance(value, Mapping) and "text" in value:
            data = str(value["text"]).encode("utf-8")
        elif isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        elif isinstance(value, str):
            data = value.encode("utf-8")
        else:
            raise ValueError(f"attachment {name!r}: expected bytes, text, or a dict with "
                             "'base64' or 'text'")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        names.append(name)
    return names


def resolve_collector(task: Task, given: Collector | None) -> Collector | None:
    """The harness's collector, else the one the task names in `meta["collect"]`."""
    if given is not None:
        return given
    spec = task.meta.get("collect") if isinstance(task.meta, Mapping) else None
    if not spec:
        return None
    module_name, _, attr = str(spec).rpartition(":")
    fn = getattr(importlib.import_module(module_name), attr, None) if module_name else None
    if not callable(fn):
        raise ValueError(f"task {task.id}: meta.collect {spec!r} is not 'module:function'")
    return fn


def workspace_listing(workspace: Path) -> dict[str, int]:
    """File name -> size, for the trajectory: did the agent write what it should have?"""
    return {str(p.relative_to(workspace)): p.stat().st_size
            for p in sorted(workspace.rglob("*"))
            if p.is_file() and p.relative_to(workspace).parts[0] != ".tmp"}


def workspace_event(workspace: Path, kept: bool) -> dict[str, Any]:
    """The trajectory's last entry: the files left behind, and where, if the folder is kept."""
    event: dict[str, Any] = {"role": "harness", "event": "workspace",
                             "files": workspace_listing(workspace)}
    if kept:
        event["kept_at"] = str(workspace)
    return event


def _clip_entry(entry: dict[str, Any], limit: int) -> dict[str, Any]:
    """A trajectory entry with every long string cut in the middle (tool arguments too)."""
    def clip(value: Any) -> Any:
        if isinstance(value, str):
            return clip_middle(value, limit)
        if isinstance(value, dict):
            return {k: clip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clip(v) for v in value]
        return value
    return clip(entry)


def _named_only(assistant: dict[str, Any]) -> dict[str, Any]:
    """A text-protocol message for the record: its calls are already in its text, so they are
    kept by id and name only (the analysts' view of a trajectory is short)."""
    calls = [{"id": c["id"], "type": "function",
              "function": {"name": c["function"]["name"], "arguments": "(in the text)"}}
             for c in assistant.get("tool_calls", [])]
    return {**assistant, "tool_calls": calls} if calls else assistant


class AgentHarness:
    """A tool-using agent loop. See the module docstring for the protocols and the answer."""

    name = "agent"

    def __init__(
        self,
        *,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        builtin: Sequence[str] = BUILTIN_TOOLS,
        protocol: Literal["tools", "text"] = "tools",
        max_turns: int = 8,
        max_tokens: int = 1024,
        limits: Limits | None = None,
        observation_chars: int = 3000,
        trajectory_chars: int = 1500,
        collect: Collector | None = None,
        instructions: str | None = None,
        keep_workspace: bool = False,
        single_shot: bool = False,
    ):
        if protocol not in ("tools", "text"):
            raise ValueError(f"protocol {protocol!r}: expected 'tools' or 'text'")
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.user_tools = [as_tool(t) for t in tools]
        self.builtin = tuple(builtin)
        self.protocol = protocol
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.limits = limits or Limits()
        self.observation_chars = observation_chars
        self.trajectory_chars = trajectory_chars
        self.collect = collect
        self.instructions = instructions
        self.keep_workspace = keep_workspace
        self.single_shot = single_shot
        names = [*self.builtin, *(t.name for t in self.user_tools)]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique, got {names}")

    def _system(self, skill: Skill, tools: Sequence[Tool]) -> str:
        if self.instructions is not None:
            head = self.instructions
        elif self.protocol == "tools":
            head = SINGLE_SHOT_TOOLS_INSTRUCTIONS if self.single_shot else TOOLS_INSTRUCTIONS
        else:
            listing = "; ".join(f"{t.name}({', '.join(t.parameters.get('properties', {}))}): "
                                f"{t.description.split('. ')[0]}" for t in tools)
            text = SINGLE_SHOT_TEXT_INSTRUCTIONS if self.single_shot else TEXT_INSTRUCTIONS
            head = text.replace("{tools}", listing)
        body = skill.for_target().strip()  # a package: SKILL.md and the files it references
        return f"{head}\n\n{body}" if body else head

    async def run(self, skill: Skill, task: Task, client: RoleClient, sample: int = 0
                  ) -> Rollout:
        started = time.monotonic()
        sandbox = await asyncio.to_thread(Sandbox, self.limits, keep=self.keep_workspace)
        try:
            return await self._run(skill, task, client, sample, sandbox, started)
        finally:
            await asyncio.to_thread(sandbox.close)

    async def _run(self, skill: Skill, task: Task, client: RoleClient, sample: int,
                   sandbox: Sandbox, started: float) -> Rollout:
        ws = sandbox.workspace
        files = attach_files(ws, task.meta.get("files") or {}) if task.meta else []
        tools = [*workspace_tools(sandbox, output_chars=self.observation_chars,
                                  names=self.builtin), *self.user_tools]
        by_name = {t.name: t for t in tools}
        user = task.input
        if files:
            user += "\n\nFiles in your working folder: " + ", ".join(files)
        messages: list[dict[str, Any]] = [{"role": "system", "content": self._system(skill, tools)},
                                          {"role": "user", "content": user}]
        trajectory: list[dict[str, Any]] = [{"role": "user", "content": user}]
        usage = Usage()
        final: str | None = None

        def record(entry: dict[str, Any]) -> None:
            trajectory.append(_clip_entry(entry, self.trajectory_chars))

        def rollout(**fields: Any) -> Rollout:
            if sandbox.isolation != "auto":  # code ran: say how it was isolated
                record({"role": "harness", "event": "sandbox", "isolation": sandbox.isolation,
                        **({"fallback": sandbox.fallback_reason} if sandbox.fallback_reason
                           else {})})
            record(workspace_event(ws, self.keep_workspace))
            return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample,
                           trajectory=trajectory, usage=usage,
                           wall_s=round(time.monotonic() - started, 3), **fields)

        schemas = [t.schema() for t in tools] if self.protocol == "tools" else None
        for _turn in range(1 if self.single_shot else self.max_turns):
            try:
                completion = await client.complete(messages, stage="rollout", sample=sample,
                                                   max_tokens=self.max_tokens, tools=schemas)
            except ModelError as exc:
                if exc.kind == "fatal":
                    raise
                record({"role": "harness", "event": "model_error", "kind": exc.kind,
                        "message": exc.message})
                return rollout(error=exc.message, error_kind=exc.kind)
            usage = usage + completion.usage
            text = completion.text or ""
            if self.protocol == "tools":
                calls = completion.tool_calls
            else:
                calls = parse_text_actions(text)
            assistant: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                assistant["tool_calls"] = calls
            record(assistant if self.protocol == "tools" else _named_only(assistant))
            answer, said_final = final_answer(text)
            if not calls:
                final = answer
                break
            messages.append(assistant if self.protocol == "tools"
                            else {"role": "assistant", "content": text})
            try:
                results = [await self._call(by_name, call) for call in calls]
            except SandboxError as exc:
                return rollout(error=f"sandbox: {exc}", error_kind="sandbox")
            for call, (output, failed) in zip(calls, results):
                record({"role": "tool", "tool_call_id": call["id"],
                        "name": call["function"]["name"], "content": output, "error": failed})
            if self.single_shot:  # the calls ran once; their output stays in the record only
                final = answer
                break
            if self.protocol == "tools":
                messages += [{"role": "tool", "tool_call_id": call["id"], "content": output}
                             for call, (output, _) in zip(calls, results)]
            else:
                if said_final and not any(failed for _, failed in results):
                    final = answer  # code and FINAL in one message, and the code ran cleanly
                    break
                messages.append({"role": "user", "content": self._observations(
                    calls, results, said_final)})
        else:
            record({"role": "harness", "event": "turn_limit", "turns": self.max_turns})
        collector = resolve_collector(task, self.collect)
        text_answer = final or ""
        if collector is not None:
            text_answer = await asyncio.to_thread(collector, task, ws, text_answer)
        return rollout(answer=text_answer)

    async def _call(self, by_name: Mapping[str, Tool], call: dict[str, Any]) -> tuple[str, bool]:
        """Run one tool call; (observation, failed). Errors become observations."""
        fn = call.get("function") or {}
        tool = by_name.get(fn.get("name", ""))
        if tool is None:
            return (f"error: unknown tool {fn.get('name')!r}; available: "
                    f"{', '.join(by_name)}", True)
        try:
            output = await tool.call(fn.get("arguments"))
        except ToolError as exc:
            return f"error: {exc}", True
        except SandboxError:
            raise
        except Exception as exc:  # a user tool's bug is the model's observation, not a crash
            return f"error: {type(exc).__name__}: {exc}", True
        return clip_middle(output, self.observation_chars), False

    @staticmethod
    def _observations(calls: list[dict[str, Any]], results: list[tuple[str, bool]],
                      said_final: bool) -> str:
        parts = [f"Output of {c['function']['name']}:\n{out}" for c, (out, _) in
                 zip(calls, results)]
        if said_final:
            parts.append("Your FINAL answer was not accepted because a tool call failed; fix "
                         "the problem, then give FINAL again.")
        return "\n\n".join(parts)
