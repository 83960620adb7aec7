"""A session's digest: what later steps mine tasks from, redacted before it exists.

One JSON file per session (`<source>-<id>.json`, mode 0600, in a 0700 folder): its id, source,
file and working folder, time span, turns (role, time, text redacted then clipped to a
per-turn budget, all turns to a total budget), and cheap counts of what a miner looks for
(user corrections, retried prompts). Every string is scrubbed (redaction.scrub_text) before
clipping, since a clip could cut a key to a piece no pattern knows. The file name depends only
on the session, so a second harvest rewrites a grown session and leaves an unchanged one alone.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skilltrain.files import atomic_write
from skilltrain.redaction import scrub_text
from skilltrain.sleep.transcripts import Session

VERSION = 1
_CORRECTION = re.compile(r"^\W*(no|nope|wrong|incorrect|actually|instead|not quite|that'?s not|"
                         r"that is not|don'?t|do not|stop|undo|revert)\b", re.I)
_RETRY = re.compile(r"\b(try again|again please|retry|one more time)\b", re.I)


@dataclass(frozen=True)
class Budget:
    """How much of a session a digest keeps: characters per turn and in all."""

    turn_chars: int = 2000
    total_chars: int = 60000


def clip(text: str, limit: int) -> str:
    """`text` cut in the middle to about `limit` characters, saying how much went."""
    if len(text) <= limit:
        return text
    half = max(limit // 2 - 20, 1)
    return f"{text[:half]} [... {len(text) - 2 * half} characters cut ...] {text[-half:]}"


def _counts(turns: list[dict[str, str]]) -> dict[str, int]:
    """User corrections (a later user turn opening with "no", "actually", "undo"...) and
    retries (a user turn repeating an earlier one, or asking to try again)."""
    users = [" ".join(t["text"].split()).lower() for t in turns if t["role"] == "user"]
    corrections = sum(bool(_CORRECTION.match(u)) for u in users[1:])
    retries = sum(u in users[:i] or bool(_RETRY.search(u)) for i, u in enumerate(users) if i)
    return {"user_turns": len(users),
            "assistant_turns": sum(t["role"] == "assistant" for t in turns),
            "tool_calls": sum(t["role"] == "tool_call" for t in turns),
            "corrections": corrections, "retries": retries}


def digest(session: Session, budget: Budget = Budget()) -> tuple[dict[str, Any], int]:
    """The digest of a kept session and how many secrets were redacted from it."""
    redacted = 0

    def scrub(text: str) -> str:
        nonlocal redacted
        clean, n = scrub_text(text)
        redacted += n
        return clean

    turns, used, cut = [], 0, 0
    for t in session.turns:
        text = clip(scrub(t["text"]), budget.turn_chars)
        if used + len(text) > budget.total_chars:
            cut += 1
            continue
        used += len(text)
        turns.append({"role": t["role"], "time": t.get("time") or "", "text": text})
    times = session.times
    out = {"version": VERSION, "id": scrub(session.id), "source": session.source,
           "file": scrub(session.path), "cwd": scrub(session.cwd),
           "started": times[0] if times else "", "ended": times[-1] if times else "",
           "counts": {**_counts(session.turns), "turns_cut": cut}, "turns": turns}
    out["redacted"] = redacted
    return out, redacted


def file_name(source: str, session_id: str) -> str:
    """A digest's file name: stable per session, safe on any file system."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", session_id).strip("._")[:120] or "session"
    return f"{source}-{safe}.json"


def write(out: Path, record: dict[str, Any]) -> str:
    """Write one digest into `out`: "new", "updated" or "unchanged" (left as it was)."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = out / file_name(record["source"], record["id"])
    text = json.dumps(record, ensure_ascii=False, indent=1) + "\n"
    if path.is_file():
        if path.read_text(encoding="utf-8", errors="replace") == text:
            return "unchanged"
        status = "updated"
    else:
        status = "new"
    atomic_write(path, text)  # a private temporary file renamed over: 0600 from the start
    os.chmod(path, 0o600)
    return status
