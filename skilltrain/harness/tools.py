"""Tools for the agent harness: plain Python functions described to the model by their signature.

A user tool is any function with type hints; its JSON schema is derived from the signature (via
pydantic), its description from the docstring, and the model's arguments are validated against
the same model before the call, so a bad call comes back to the model as a readable error rather
than a crash. The built-in workspace tools (`python`, `read_file`, `list_files`, `write_file`)
are made the same way, bound to one task's sandbox.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from skilltrain.harness.sandbox import Sandbox, clip_middle

BUILTIN_TOOLS = ("python", "read_file", "list_files", "write_file")
_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


class ToolError(Exception):
    """A tool call that cannot be carried out; the message goes back to the model as is."""


@dataclass(frozen=True)
class Tool:
    """One callable tool: its OpenAI schema and the function behind it."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    arguments: type[BaseModel]

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry for this tool."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

    async def call(self, arguments: str | dict[str, Any] | None) -> str:
        """Validate the model's arguments and call the function (sync ones in a thread).
        Raises ToolError for arguments that do not fit; the function's own exceptions pass."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise ToolError(f"arguments are not valid JSON ({exc.msg})") from None
        if not isinstance(arguments, dict):
            raise ToolError("arguments must be a JSON object")
        try:
            parsed = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()[:3])
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None
        kwargs = {k: getattr(parsed, k) for k in type(parsed).model_fields}
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**kwargs)
        else:
            result = await asyncio.to_thread(self.fn, **kwargs)
        return result if isinstance(result, str) else json.dumps(result, default=str)


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The summary (the docstring up to an `Args:` section) and per-argument descriptions."""
    doc = inspect.getdoc(fn) or ""
    summary, _, args_part = doc.partition("\nArgs:")
    described = {}
    for line in args_part.splitlines():
        m = _ARG_LINE.match(line)
        if m:
            described[m.group(1)] = m.group(2).strip()
    return " ".join(summary.split()), described


def _strip_titles(node: Any) -> Any:
    """pydantic adds a `title` to every property; models do not need them and they cost tokens."""
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def tool_from_function(fn: Callable[..., Any], *, name: str | None = None,
                       description: str | None = None) -> Tool:
    """Describe a typed function as a tool. Every parameter needs a type hint; parameters with
    defaults are optional. Raises TypeError for a signature that cannot be described."""
    tool_name = name or fn.__name__
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
        raise TypeError(f"tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-'")
    summary, described = _doc_parts(fn)
    hints = inspect.get_annotations(fn, eval_str=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name}: *args/**kwargs cannot be described to a model")
        if param.name not in hints:
            raise TypeError(f"tool {tool_name}: parameter {param.name!r} has no type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"),
                         **fields)
    schema = _strip_titles(model.model_json_schema())
    for arg, text in described.items():
        if arg in schema.get("properties", {}):
            schema["properties"][arg]["description"] = text
    return Tool(name=tool_name, description=description or summary or tool_name,
                parameters=schema, fn=fn, arguments=model)


def as_tool(obj: Callable[..., Any] | Tool) -> Tool:
    return obj if isinstance(obj, Tool) else tool_from_function(obj)


def _inside(workspace: Path, path: str) -> Path:
    """A path the model named, resolved and checked to lie inside the workspace."""
    target = (workspace / path).resolve()
    if target != workspace and workspace not in target.parents:
        raise ToolError(f"{path}: outside the workspace")
    return target


def workspace_tools(sandbox: Sandbox, *, output_chars: int = 4000,
                    names: tuple[str, ...] = BUILTIN_TOOLS) -> list[Tool]:
    """The built-in tools, bound to one sandbox. Code runs in the sandbox's child process; the
    file tools run here but only on paths inside the workspace."""
    ws = sandbox.workspace

    def python(code: str) -> str:
        """Run Python code in the task's working folder and return its output (stdout, stderr,
        exit code). Each call is a fresh process: files persist, variables do not. Print what
        you need to see.

        Args:
            code: the Python source to run
        """
        result = sandbox.run_python(code)
        if not result.ok:  # the model must see that it failed, and the record must say so
            raise ToolError(result.render(output_chars))
        return result.render(output_chars)

    def read_file(path: str) -> str:
        """Read a text file from the working folder.

        Args:
            path: file path relative to the working folder
        """
        target = _inside(ws, path)
        if not target.is_file():
            raise ToolError(f"{path}: no such file")
        data = target.read_bytes()
        try:
            return clip_middle(data.decode("utf-8"), output_chars)
        except UnicodeDecodeError:
            return (f"{path} is a binary file ({len(data)} bytes); read it with the python "
                    "tool and a suitable library")

    def list_files(path: str = ".") -> str:
        """List the files in a folder of the working folder, with their sizes in bytes.

        Args:
            path: folder path relative to the working folder
        """
        target = _inside(ws, path)
        if not target.is_dir():
            raise ToolError(f"{path}: no such folder")
        rows = [f"{p.relative_to(ws)}{'/' if p.is_dir() else ''}\t"
                f"{p.stat().st_size if p.is_file() else ''}"
                for p in sorted(target.rglob("*"))
                if p.relative_to(ws).parts[0] != ".tmp"]  # the sandbox's TMPDIR
        return clip_middle("\n".join(rows) or "(empty)", output_chars)

    def write_file(path: str, content: str) -> str:
        """Write a text file in the working folder (replacing it if it exists).

        Args:
            path: file path relative to the working folder
            content: the full text to write
        """
        target = _inside(ws, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return f"wrote {len(content.encode('utf-8'))} bytes to {path}"

    made = {f.__name__: f for f in (python, read_file, list_files, write_file)}
    unknown = set(names) - set(made)
    if unknown:
        raise ValueError(f"unknown built-in tools {sorted(unknown)}; known: {BUILTIN_TOOLS}")
    return [tool_from_function(made[n]) for n in names]
