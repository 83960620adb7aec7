"""Reading agent sessions from disk: Claude Code, Codex CLI and a generic JSONL, each into
`Session`s with their turns and, where a session must not be learned from, why.

Why drop some: a headless run (`claude -p`, `codex exec`, an SDK) is a script's prompt, not a
person's work, and a sub-agent's session is its parent's delegation; learning from either, or
from the sessions skilltrain itself started, would train on our own or a machine's output (the
reference Sleep's Codex harvester ingested its own replays). How each is recognised:

- Claude Code (`<projects>/<encoded cwd>/<session>.jsonl`): a record with `isSidechain: true`
  or an `agentId`, or a file named `agent-*.jsonl` or under `subagents/`, is a sub-agent; a
  record whose `entrypoint` is not an interactive one (the CLI sets `sdk-cli` under `-p`,
  `sdk-ts` / `sdk-py` for the SDKs, `mcp`, `claude-code-github-action`, `local-agent`; `cli`
  and the IDE entrypoints are interactive) is headless.
- Codex (`<sessions>/YYYY/MM/DD/rollout-*.jsonl`): the `session_meta` line's `source`
  (`exec`, `mcp` are headless; an object or string naming a sub-agent is a sub-agent) and
  `originator` (`codex_exec` is headless).
- Every format: skilltrain's own runs (the command harness and `cmd:` models run the CLI in a
  scratch folder made by harness.sandbox.Sandbox, `<tmp>/skilltrain-ws-*` or
  `<tmp>/skilltrain-cli-*`) are recognised by the working folder the session recorded; a Codex
  session whose provider is ours (cli_endpoint.PROVIDER) is ours as well.
- Generic JSONL (ours, documented for any other tool): one object per line, `{"session": id,
  "role": "user" | "assistant" | "tool_call" | "tool_result", "text": str, "time": ISO 8601
  (optional), "cwd": str (optional)}`; lines of one session may be anywhere in the file.

Turn parsing is cli_endpoint's (the command harness reads the same records back).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skilltrain.harness.cli_endpoint import PROVIDER, claude_turn, codex_turn

SOURCES = ("claude-code", "codex", "generic")
ROLES = ("user", "assistant", "tool_call", "tool_result")
# A Sandbox workspace (harness/sandbox.py's default prefix; models/cli_model.py's prefix).
_OWN_FOLDER = re.compile(r"skilltrain-(?:ws|cli)-[A-Za-z0-9_]+")
_CLAUDE_INTERACTIVE = frozenset({"cli", "claude-vscode", "claude-jetbrains", "claude-desktop"})
_CODEX_HEADLESS = frozenset({"exec", "mcp"})


class TranscriptError(ValueError):
    """A transcript file the user named is not in the format it claims: one line naming the
    file, the line and what was expected."""


@dataclass
class Session:
    """One agent session as read: turns are {"role", "text", "time"} dicts, unredacted."""

    id: str
    source: str
    path: str
    cwd: str = ""
    turns: list[dict[str, str]] = field(default_factory=list)
    dropped: str | None = None  # "headless", "subagent", "skilltrain", "empty"

    @property
    def times(self) -> list[str]:
        return sorted(t["time"] for t in self.turns if t.get("time"))


def own_folder(cwd: str) -> bool:
    """Whether a session's working folder is one of skilltrain's scratch folders."""
    return any(_OWN_FOLDER.fullmatch(part) for part in Path(cwd).parts)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a CLI's JSONL file; a torn or foreign line (a session still being
    written) is skipped, since the file is the CLI's, not the user's to fix."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def _finish(session: Session) -> Session:
    if session.dropped is None and own_folder(session.cwd):
        session.dropped = "skilltrain"
    if session.dropped is None and not any(t["role"] == "user" for t in session.turns):
        session.dropped = "empty"
    return session


def read_claude(path: Path) -> Session:
    """One Claude Code session file."""
    session = Session(path.stem, "claude-code", str(path))
    if path.name.startswith("agent-") or "subagents" in path.parts:
        session.dropped = "subagent"
    for record in _records(path):
        session.id = str(record.get("sessionId") or session.id)
        session.cwd = session.cwd or str(record.get("cwd") or "")
        if record.get("isSidechain") or record.get("agentId"):
            session.dropped = session.dropped or "subagent"
        entry = record.get("entrypoint")
        if isinstance(entry, str) and entry and entry not in _CLAUDE_INTERACTIVE:
            session.dropped = session.dropped or "headless"
        if record.get("isMeta"):  # the CLI's own notes (command caveats), not the user's words
            continue
        when = str(record.get("timestamp") or "")
        session.turns += [{"role": t["role"], "text": t["content"], "time": when}
                          for t in claude_turn(record)]
    return _finish(session)


def _codex_meta(session: Session, meta: dict[str, Any]) -> None:
    session.id = str(meta.get("id") or session.id)
    session.cwd = str(meta.get("cwd") or session.cwd)
    source, originator = meta.get("source"), str(meta.get("originator") or "")
    if isinstance(source, dict) or (isinstance(source, str) and "agent" in source.lower()):
        session.dropped = session.dropped or "subagent"
    elif source in _CODEX_HEADLESS or originator == "codex_exec":
        session.dropped = session.dropped or "headless"
    if meta.get("model_provider") == PROVIDER:
        session.dropped = session.dropped or "skilltrain"


def read_codex(path: Path) -> Session:
    """One Codex CLI session (rollout) file."""
    session = Session(path.stem.removeprefix("rollout-"), "codex", str(path))
    for record in _records(path):
        payload = record.get("payload")
        if record.get("type") == "session_meta" and isinstance(payload, dict):
            _codex_meta(session, payload)
            continue
        if record.get("type") == "turn_context" and isinstance(payload, dict):
            session.cwd = session.cwd or str(payload.get("cwd") or "")
        when = str(record.get("timestamp") or "")
        for t in codex_turn(record):
            if t["content"].startswith(("<user_instructions>", "# AGENTS.md")):
                continue  # instructions the CLI injects as a user message
            session.turns.append({"role": t["role"], "text": t["content"], "time": when})
    return _finish(session)


def read_generic(path: Path) -> list[Session]:
    """The sessions of one generic JSONL file (format in the module docstring). Raises
    TranscriptError on a line that is not one."""
    sessions: dict[str, Session] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TranscriptError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TranscriptError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("session"), str) \
                or record.get("role") not in ROLES or not isinstance(record.get("text"), str):
            raise TranscriptError(f"{path}:{number}: expected {{\"session\": str, \"role\": "
                                  f"one of {', '.join(ROLES)}, \"text\": str}}")
        sid = record["session"]
        session = sessions.setdefault(sid, Session(sid, "generic", str(path)))
        session.cwd = session.cwd or str(record.get("cwd") or "")
        session.turns.append({"role": record["role"], "text": record["text"],
                              "time": str(record.get("time") or "")})
    return [_finish(s) for s in sessions.values()]


def jsonl_files(root: Path) -> list[Path]:
    """Every session file under a Claude Code projects folder (sub-agents' included: they are
    read to be counted as dropped) or a Codex sessions folder (`YYYY/MM/DD/rollout-*.jsonl`,
    older layouts' names too)."""
    return sorted(root.rglob("*.jsonl")) if root.is_dir() else []
