"""`skilltrain sleep mine`: session digests (digest.py) into rule-scored tasks, heuristically.

Why rules: a request from a session has no reference answer, but a user who corrected the
agent said what a good answer must (or must not) show. The miner reads each digest's turns:

- A user turn is *feedback* when it opens like a correction ("no", "wrong", "actually",
  "that's not", "don't", "undo"), asks for a retry ("try again", "retry") or says "instead".
  Feedback belongs to the *request* it follows: the last user turn before it that was not
  feedback, once an assistant turn has answered that request. Several corrections of one
  request add to one task.
- Rules from the feedback's words, each `no_refusal` plus:
  * a quoted span (`...`, "...", '...') preceded by a negative cue ("don't say", "not",
    "without", "instead of", "rather than", "avoid") -> `not_contains`; preceded by a positive
    cue ("use", "include", "say", "write", "should", "must") -> `contains`; neither -> ignored;
  * "only the number" / "just the number" / "number only" -> a bare-number `regex`;
  * "shorter" / "too long" / "more concise" -> `max_chars` half the rejected answer's length;
    "longer" / "too short" / "more detail" -> `min_chars` twice it;
  * "add a Summary section" (a named section or heading) -> `section_present`.
- A task whose only rule is `no_refusal` is kept only when the rejected answer was a refusal
  (otherwise every answer passes it and it teaches nothing); the rest count as "no_rule".
- A request the user accepted without feedback is skipped (counted "accepted"): with no
  reference and no stated property, any rule for it would be a guess.
- An LLM miner (rubrics from free-form feedback) is not built; rules only.

A task's input is the request, then up to EXCERPT characters of the turns before it as
context (after the request, so the request is what a model reads first). Its `answer` is a
placeholder the rules scorer ignores (the data loader needs one). The split is by session,
never by turn: a hash of the session id picks train / val / test, so a session's tasks stay
together and the same session lands in the same split every night.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skilltrain.files import atomic_write
from skilltrain.rules import is_refusal

PLACEHOLDER = "(scored by rules)"
SPLITS = ("train", "val", "test")
RATIOS = (0.6, 0.2, 0.2)
EXCERPT = 600
_FEEDBACK = re.compile(
    r"^\W*(no|nope|wrong|incorrect|actually|not quite|that'?s (not|wrong)|that is (not|wrong)|"
    r"don'?t|do not|stop|undo|revert)\b|\b(try again|retry|one more time|instead)\b", re.I)
_QUOTED = re.compile(r"`([^`\n]{1,80})`|\"([^\"\n]{1,80})\"|“([^”\n]{1,80})”|"
                     r"(?<!\w)'([^'\n]{1,80})'(?!\w)")
_NEG_END = re.compile(r"\b(don'?t|do not|never|stop|avoid|without|instead of|rather than|not|"
                      r"no more|remove|drop)\s+(\w+\s+){0,2}$", re.I)
_POS = re.compile(r"\b(use|include|say|write|mention|add|want|should|must|need|prefer|call)\b",
                  re.I)
_NEG = re.compile(r"\b(no|not|don'?t|never|without|avoid)\b", re.I)
_NUMBER = re.compile(r"\b(only (the|a) (number|digits?|integer)|just (the|a) number|"
                     r"number only|digits only)\b", re.I)
_SHORTER = re.compile(r"\b(shorter|too long|more concise|be brief|briefer|less verbose)\b", re.I)
_LONGER = re.compile(r"\b(longer|too short|more detail|elaborate)\b", re.I)
_SECTION = re.compile(r"\b(?:add|include|need|missing|with)\s+(?:a|an|the)?\s*[`\"']?"
                      r"([A-Z][\w -]{0,30}?)[`\"']?\s+(?:section|heading)\b")
BARE_NUMBER = r"^\s*-?\d+(?:[.,]\d+)?\s*$"


class MineError(ValueError):
    """A digest that cannot be read: one line naming the file and what was expected."""


@dataclass
class Mined:
    """What one mining pass found, for the command's summary line."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    sessions: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # accepted / no_rule

    def by_split(self) -> dict[str, list[dict[str, Any]]]:
        return {s: [t for t in self.tasks if t["split"] == s] for s in SPLITS}

    def summary(self, out: Path) -> str:
        sizes = ", ".join(f"{s} {len(v)}" for s, v in self.by_split().items())
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (f"mined {len(self.tasks)} rule tasks from {self.sessions} sessions ({sizes}); "
                f"skipped requests: {skipped}; wrote {out}")


def split_of(session_id: str, ratios: Sequence[float] = RATIOS) -> str:
    """train / val / test from a hash of the session id alone (stable across nights)."""
    x = int(hashlib.sha256(session_id.encode()).hexdigest()[:12], 16) / 16 ** 12
    edge = 0.0
    for name, ratio in zip(SPLITS, ratios, strict=True):
        edge += ratio / sum(ratios)
        if x < edge:
            return name
    return SPLITS[-1]


def is_feedback(text: str) -> bool:
    return bool(_FEEDBACK.search(" ".join(text.split())))


def _span_rules(text: str) -> list[dict[str, Any]]:
    rules, last = [], 0
    for m in _QUOTED.finditer(text):
        span = next(g for g in m.groups() if g is not None).strip()
        before = re.split(r"[.;!?]", text[last:m.start()])[-1]
        last = m.end()
        if not span:
            continue
        if _NEG_END.search(before):
            rules.append({"not_contains": span})
        elif _POS.search(before):
            rules.append({"contains": span})
        elif _NEG.search(before):
            rules.append({"not_contains": span})
    return rules


def rules_from_feedback(feedback: str, rejected: str) -> list[dict[str, Any]]:
    """The rules one piece of feedback states about the answer it rejected (no_refusal not
    included: the caller adds it once)."""
    text = " ".join(feedback.split())
    rules = _span_rules(text)
    if _NUMBER.search(text):
        rules.append({"regex": BARE_NUMBER, "describe": "an answer that is only a number"})
    n = len(rejected.strip())
    if n and _SHORTER.search(text):
        rules.append({"max_chars": max(n // 2, 20)})
    elif n and _LONGER.search(text):
        rules.append({"min_chars": max(n * 2, 40)})
    for m in _SECTION.finditer(text):
        rules.append({"section_present": m.group(1).strip()})
    return rules


def _merge(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Duplicates out; a span both insisted on and rejected is dropped (contradictory)."""
    wanted = {r["contains"].casefold() for r in rules if "contains" in r}
    banned = {r["not_contains"].casefold() for r in rules if "not_contains" in r}
    out: list[dict[str, Any]] = []
    for r in rules:
        span = str(r.get("contains", r.get("not_contains", ""))).casefold()
        if span and span in wanted and span in banned:
            continue
        if r not in out:
            out.append(r)
    return out


def _context(turns: list[dict[str, Any]], end: int) -> str:
    text = "\n".join(f"{t['role']}: {t['text']}" for t in turns[:end]
                     if t["role"] in ("user", "assistant"))
    return text if len(text) <= EXCERPT else "..." + text[-EXCERPT:]


def mine_digest(record: dict[str, Any], result: Mined) -> None:
    """Append the tasks of one digest to `result`."""
    sid, turns = str(record["id"]), record["turns"]
    split = split_of(sid)
    request: int | None = None  # index of the open request
    answer = ""  # the latest assistant text since it
    found: dict[int, list[dict[str, Any]]] = {}
    refused: dict[int, bool] = {}
    for i, turn in enumerate(turns):
        role, text = turn["role"], str(turn["text"])
        if role == "assistant":
            answer = text
        if role != "user":
            continue
        if request is not None and answer and is_feedback(text):
            found.setdefault(request, []).extend(rules_from_feedback(text, answer))
            refused[request] = refused.get(request, False) or is_refusal(answer)
            answer = ""
            continue
        if request is not None and request not in found and answer:
            result.skipped["accepted"] += 1
        request, answer = i, ""
    if request is not None and request not in found and answer:
        result.skipped["accepted"] += 1
    for index, rules in found.items():
        rules = _merge(rules)
        if not rules and not refused[index]:
            result.skipped["no_rule"] += 1
            continue
        context = _context(turns, index)
        task_input = str(turns[index]["text"])
        if context:
            task_input += f"\n\nContext (earlier in the session):\n{context}"
        result.tasks.append({
            "id": f"{record['source']}-{sid}-{index}", "input": task_input,
            "answer": PLACEHOLDER, "type": "mined", "kind": "rule",
            "rules": [*rules, {"no_refusal": True}], "session": sid,
            "source": record["source"], "split": split})


def read_digest(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MineError(f"{path}: not a readable digest ({type(exc).__name__})") from None
    ok = (isinstance(record, dict) and isinstance(record.get("id"), str)
          and isinstance(record.get("source"), str) and isinstance(record.get("turns"), list)
          and all(isinstance(t, dict) and isinstance(t.get("role"), str)
                  and isinstance(t.get("text"), str) for t in record["turns"]))
    if not ok:
        raise MineError(f"{path}: expected a digest with 'id', 'source' and 'turns' "
                        "[{role, text}]")
    return record


def mine(digests: Path) -> Mined:
    """Every digest in the folder (`*.json`, in name order), mined."""
    if not digests.is_dir():
        raise MineError(f"--digests {digests}: no such folder")
    result = Mined()
    for path in sorted(digests.glob("*.json")):
        result.sessions += 1
        mine_digest(read_digest(path), result)
    return result


def write_tasks(result: Mined, out: Path) -> list[Path]:
    """`out` (all tasks) and train/val/test.jsonl beside it; an empty split is an empty file."""
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def jsonl(rows: list[dict[str, Any]]) -> str:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    paths = [out]
    atomic_write(out, jsonl(result.tasks))
    for name, rows in result.by_split().items():
        path = out.parent / f"{name}.jsonl"
        atomic_write(path, jsonl(rows))
        paths.append(path)
    return paths
