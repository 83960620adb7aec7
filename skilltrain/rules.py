"""Rule judges: score an open-ended answer by checks a user can state without a reference.

Tasks mined from agent sessions rarely have one right answer, but they often have properties a
good answer must show (names a file, has a Summary section, is not a refusal, ran the tests).
Each rule is a mapping with exactly one kind key, e.g. `{contains: "total"}`,
`{regex: "^\\d+$", describe: "a bare number"}`, `{section_present: "Summary"}`,
`{min_chars: 40}`, `{max_chars: 2000}`, `{no_refusal: true}`, `{tool_called: "python"}`.
Optional keys: `describe` (what the rule requires, in words: the feedback when it fails) and
`ignore_case` (default true for contains / not_contains / section_present, false for regex).

Combination: hard = 1 when every rule passes, soft = the fraction passing, feedback = the
failed rules in words. The feedback reaches the optimizer, so it never quotes a regex: an
optimizer shown the pattern copies it into the skill and learns the judge, not the task.

Errors are `RuleError` (a ValueError); `scoring.Rules` turns them into one-line ScorerErrors,
which keeps this module below `scoring` in the import graph.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skilltrain.data import Task
from skilltrain.records import Rollout, Score

# Openings that mark a refusal or a non-answer, compared lower-cased at the answer's start
# (after leading quotes and whitespace; curly apostrophes read as straight ones).
REFUSAL_OPENINGS: tuple[str, ...] = (
    "i'm sorry", "i am sorry", "sorry,", "sorry but", "sorry, but", "i apologize",
    "i apologise", "i can't", "i cannot", "i can not", "i won't", "i will not", "i'm unable",
    "i am unable", "i'm not able", "i am not able", "i'm not allowed", "i am not allowed",
    "as an ai", "unfortunately, i can", "unfortunately i can", "i must decline",
    "i'm afraid i can", "i am afraid i can",
)

KINDS: tuple[str, ...] = ("contains", "not_contains", "regex", "section_present", "min_chars",
                          "max_chars", "no_refusal", "tool_called")
_OPTIONS = ("describe", "ignore_case")
_HEADING_RE = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


class RuleError(ValueError):
    """A rule that cannot be used; the message names where it came from and which rule."""


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass(frozen=True)
class Rule:
    """One parsed rule. `number` is its 1-based place in the task's list, for feedback."""

    kind: str
    value: Any
    number: int = 1
    describe: str = ""
    ignore_case: bool = True

    def passes(self, rollout: Rollout) -> bool:
        answer = rollout.answer
        if self.kind in ("contains", "not_contains"):
            found = (self.value.casefold() in answer.casefold() if self.ignore_case
                     else self.value in answer)
            return found if self.kind == "contains" else not found
        if self.kind == "regex":
            return re.search(self.value, answer, re.IGNORECASE if self.ignore_case else 0) \
                is not None
        if self.kind == "section_present":
            return has_section(answer, self.value, self.ignore_case)
        if self.kind == "min_chars":
            return len(answer.strip()) >= self.value
        if self.kind == "max_chars":
            return len(answer.strip()) <= self.value
        if self.kind == "no_refusal":
            return not is_refusal(answer)
        return self.value in tool_names(rollout.trajectory)  # tool_called

    def failure(self, rollout: Rollout) -> str:
        """What was wrong, in words; a regex rule is never quoted."""
        if self.describe:
            return f"expected {self.describe}"
        n, text = len(rollout.answer.strip()), _clip(str(self.value))
        return {  # the regex line names the rule by number only
            "contains": f"the answer does not contain {text!r}",
            "not_contains": f"the answer contains {text!r}, which it must not",
            "regex": f"the answer does not have the required form (rule {self.number})",
            "section_present": f"the answer has no {text!r} section",
            "min_chars": f"the answer is {n} characters, under the minimum of {text}",
            "max_chars": f"the answer is {n} characters, over the maximum of {text}",
            "no_refusal": "the answer opens with a refusal",
            "tool_called": f"the tool {text!r} was never called",
        }[self.kind]


def has_section(answer: str, name: str, ignore_case: bool = True) -> bool:
    """A Markdown heading titled `name` (`## Summary`), or a line naming it as a label
    (`Summary: ...`, `**Summary:**`, a bold line `**Summary**`)."""
    def norm(text: str) -> str:
        text = text.strip().strip("*_").strip().rstrip(":").strip()
        return text.casefold() if ignore_case else text

    want = norm(name)
    for line in answer.splitlines():
        s = line.strip()
        heading = _HEADING_RE.match(s)
        if heading:
            title = heading.group(1)
        elif ":" in s:
            title = s.split(":", 1)[0]
        elif s.startswith(("**", "__")):
            title = s
        else:
            continue
        if norm(title) == want:
            return True
    return False


def is_refusal(answer: str) -> bool:
    """The answer opens with one of REFUSAL_OPENINGS."""
    start = answer.strip().lstrip("\"'“‘`*_ ").replace("’", "'").casefold()
    return start.startswith(REFUSAL_OPENINGS)


def tool_names(trajectory: Iterable[Mapping[str, Any]]) -> set[str]:
    """Names of the tools a rollout called: the OpenAI-shaped `tool_calls` of assistant
    entries (both agent protocols record them) and the names of `role: tool` observations."""
    names: set[str] = set()
    for entry in trajectory:
        if not isinstance(entry, Mapping):
            continue
        for call in entry.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
                names.add(fn["name"])
        if entry.get("role") == "tool" and isinstance(entry.get("name"), str):
            names.add(entry["name"])
    return names


def parse_rule(raw: Any, number: int, where: str) -> Rule:
    """One rule from its mapping; RuleError names `where`, the rule's number and what is
    wrong (the pattern of a bad regex is not echoed, only the compiler's complaint)."""
    label = f"{where}: rule {number}"
    if not isinstance(raw, Mapping):
        raise RuleError(f"{label}: expected a mapping such as {{contains: TEXT}}, "
                        f"got {type(raw).__name__}")
    kinds = [k for k in raw if k in KINDS]
    unknown = [str(k) for k in raw if k not in KINDS and k not in _OPTIONS]
    if unknown:
        raise RuleError(f"{label}: unknown key(s) {', '.join(sorted(unknown))}; expected one "
                        f"of {', '.join(KINDS)} plus optional {', '.join(_OPTIONS)}")
    if len(kinds) != 1:
        raise RuleError(f"{label}: expected exactly one kind ({', '.join(KINDS)}), "
                        f"got {len(kinds)}")
    kind = kinds[0]
    label = f"{label} ({kind})"
    value = raw[kind]
    describe = raw.get("describe", "")
    if not isinstance(describe, str):
        raise RuleError(f"{label}: 'describe' must be text")
    ignore_case = raw.get("ignore_case", kind != "regex")
    if not isinstance(ignore_case, bool):
        raise RuleError(f"{label}: 'ignore_case' must be true or false")
    if kind in ("min_chars", "max_chars"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RuleError(f"{label}: expected a whole number >= 0, got {value!r}")
    elif kind == "no_refusal":
        if value is not True:
            raise RuleError(f"{label}: expected true (leave the rule out to allow refusals)")
    elif not isinstance(value, str) or not value.strip():
        raise RuleError(f"{label}: expected non-empty text")
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise RuleError(f"{label}: not a valid regular expression ({exc.msg})") from None
    return Rule(kind=kind, value=value, number=number, describe=describe.strip(),
                ignore_case=ignore_case)


def parse_rules(raw: Any, where: str, first: int = 1, json_text: bool = False
                ) -> tuple[Rule, ...]:
    """A list of rules (or, with `json_text`, a CSV cell's JSON text), numbered from `first`."""
    if raw is None:
        return ()
    if json_text and isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise RuleError(f"{where}: expected a list of rules (JSON text in a CSV cell), "
                            "got text that is not JSON") from None
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise RuleError(f"{where}: expected a list of rules, got {type(raw).__name__}")
    return tuple(parse_rule(r, first + i, where) for i, r in enumerate(raw))


def combine(rules: Sequence[Rule], rollout: Rollout) -> Score:
    """hard = all pass, soft = fraction passing, feedback = the failures in words."""
    failed = [r for r in rules if not r.passes(rollout)]
    passed = len(rules) - len(failed)
    if not failed:
        return Score(hard=1.0, soft=1.0, feedback=f"all {len(rules)} rules pass")
    reasons = "; ".join(r.failure(rollout) for r in failed)
    return Score(hard=0.0, soft=round(passed / len(rules), 4),
                 feedback=f"failed {len(failed)} of {len(rules)} rules: {reasons}")


class RuleJudge:
    """The rules of the config (for every task) followed by the task's own `rules` field."""

    def __init__(self, rules: Any = ()) -> None:
        self.rules = parse_rules(list(rules) if isinstance(rules, tuple) else rules,
                                 "config rules")

    def rules_for(self, task: Task) -> tuple[Rule, ...]:
        own = parse_rules((task.meta or {}).get("rules"), f"task {task.id!r} rules",
                          first=len(self.rules) + 1, json_text=True)
        both = (*self.rules, *own)
        if not both:
            raise RuleError(f"task {task.id!r}: no rules to score it by; give the scorer "
                            "`rules: [...]` or the task a 'rules' field")
        return both

    def score(self, task: Task, rollout: Rollout) -> Score:
        return combine(self.rules_for(task), rollout)
