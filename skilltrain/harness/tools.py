"""Tools for the agent harness: plain Python functions described to the model by their signature.

A user tool is any function with type hints; its JSON schema is derived from the signature (via
pydantic), its description from the docstring, and the model's arguments are validated against
the same model before the call, so a bad call comes back to the model as a readable error rather
than a crash. The built-in workspace tools (`python`, `read_file`, `list_files`, `write_file`,
and on request `glob` and `grep`) are made the same way, bound to one task's sandbox.

`BUILTIN_TOOLS` is the default set and stays as it is, so the prompts (and cached replies) of
existing runs do not change; `ALL_BUILTIN_TOOLS` is everything a harness may ask for (OfficeQA
asks for the paper's glob/read/grep set, benchmarks/officeqa.py).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from skilltrain.harness.sandbox import Sandbox, clip_middle

BUILTIN_TOOLS = ("python", "read_file", "list_files", "write_file")
ALL_BUILTIN_TOOLS = (*BUILTIN_TOOLS, "glob", "grep")
MAX_GLOB_ROWS = 200  # rows glob lists before saying how many it left out
MAX_GREP_MATCHES = 50  # matching lines grep shows before saying how many it left out
GREP_LINE_CHARS = 200  # a matching line is cut to this many characters
GREP_FILE_BYTES = 5_000_000  # larger files are skipped (and counted) rather than read
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
                    names: Sequence[str] = BUILTIN_TOOLS) -> list[Tool]:
    """The built-in tools named (any of ALL_BUILTIN_TOOLS), bound to one sandbox. Code and
    grep's search (a model's regular expression) run in the sandbox's child process; the other
    file tools run here but only on paths inside the workspace. Raises ValueError for an
    unknown name."""
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

    def glob(pattern: str) -> str:
        """Find files in the working folder whose path matches a glob pattern, with their sizes
        in bytes. `*` matches within one folder name, `**` any number of folders, e.g.
        `documents/**/*.md` or `**/*report*`.

        Args:
            pattern: a glob pattern relative to the working folder
        """
        if not pattern.strip() or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ToolError(f"{pattern!r}: give a pattern relative to the working folder, "
                            "without '..'")
        rows = [f"{p.relative_to(ws)}\t{p.stat().st_size}" for p in _visible_files(
            ws, ws.glob(pattern))]
        if not rows:
            return f"no files match {pattern!r}"
        more = len(rows) - MAX_GLOB_ROWS
        shown = rows[:MAX_GLOB_ROWS] + ([f"[... {more} more files not shown; use a narrower "
                                          "pattern]"] if more > 0 else [])
        return clip_middle("\n".join(shown), output_chars)

    def grep(pattern: str, path: str = ".", ignore_case: bool = True) -> str:
        """Search text files for lines matching a regular expression (Python `re` syntax).
        Returns `file:line: text` rows; binary files are skipped.

        Args:
            pattern: the regular expression to look for, e.g. `revenue.*2023`
            path: a file, or a folder searched with all it holds, relative to the working folder
            ignore_case: match upper and lower case alike
        """
        try:
            re.compile(pattern)  # a bad pattern is named here, before a process starts
        except re.error as exc:
            raise ToolError(f"invalid regular expression {pattern!r}: {exc}") from None
        target = _inside(ws, path)
        if not target.exists():
            raise ToolError(f"{path}: no such file or folder")
        # The search runs in the sandbox: a model's regular expression can backtrack for
        # ever, and there it meets the CPU and wall-clock limits instead of our thread.
        args = json.dumps({"pattern": pattern, "flags": re.IGNORECASE if ignore_case else 0,
                           "path": str(target.relative_to(ws)), "shown": path,
                           "max": MAX_GREP_MATCHES, "chars": GREP_LINE_CHARS,
                           "bytes": GREP_FILE_BYTES})
        result = sandbox.run_python(f"ARGS = {args!r}\n{_GREP_SCRIPT}")
        if not result.ok:
            raise ToolError("grep stopped: " + result.render(output_chars))
        return clip_middle(result.stdout.rstrip("\n"), output_chars)

    made = {f.__name__: f for f in (python, read_file, list_files, write_file, glob, grep)}
    unknown = set(names) - set(made)
    if unknown:
        raise ValueError(f"unknown built-in tools {sorted(unknown)}; known: "
                         f"{', '.join(ALL_BUILTIN_TOOLS)}")
    return [tool_from_function(made[n]) for n in names]


def _visible_files(workspace: Path, found: Iterable[Path]) -> list[Path]:
    """Files among `found` the model may see: inside the workspace once symbolic links are
    followed, and not in the sandbox's TMPDIR (`.tmp`); sorted, so listings are stable."""
    out = []
    for p in found:
        try:
            rel = p.relative_to(workspace)
            real = p.resolve()
        except (ValueError, OSError):
            continue
        if not rel.parts or rel.parts[0] == ".tmp" or not p.is_file():
            continue
        if real != workspace and workspace not in real.parents:
            continue
        out.append(p)
    return sorted(out)


_GREP_SCRIPT = r"""
import json, os, re
a = json.loads(ARGS)
regex = re.compile(a["pattern"], a["flags"])
root = os.path.realpath(".")
def files(top):
    if os.path.isfile(top):
        yield top
        return
    for folder, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not (folder == top == "." and d == ".tmp"))
        for name in sorted(names):
            yield os.path.join(folder, name)
rows, found, skipped = [], 0, 0
for f in files(a["path"]):
    real = os.path.realpath(f)
    if not (real == root or real.startswith(root + os.sep)) or not os.path.isfile(f):
        continue
    if os.path.normpath(f).split(os.sep)[0] == ".tmp":
        continue
    try:
        data = open(f, "rb").read(a["bytes"] + 1)
        text = None if len(data) > a["bytes"] or b"\0" in data[:8192] else data.decode()
    except (OSError, UnicodeDecodeError):
        text = None
    if text is None:
        skipped += 1
        continue
    for number, line in enumerate(text.splitlines(), 1):
        if regex.search(line):
            found += 1
            if found <= a["max"]:
                shown = line.strip()
                if len(shown) > a["chars"]:
                    shown = shown[:a["chars"]] + " [...]"
                rows.append(f"{os.path.normpath(f)}:{number}: {shown}")
if found > a["max"]:
    rows.append(f"[... {found - a['max']} more matching lines not shown; use a narrower "
                "pattern or path]")
if skipped:
    rows.append(f"({skipped} binary or very large file(s) skipped)")
if not found:
    rows.insert(0, f"no lines match {a['pattern']!r} under {a['shown']}")
print("\n".join(rows))
"""
