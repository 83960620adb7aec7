"""Meaning checks on optimizer replies: a reply that parsed is not yet a reply that means something.

Measured with the embedded 1.5B optimizer: a merge call turned a good edit into one with empty
`target` and `content` and `support: 2000`; analysts copied the example sentence of our own
prompt ("Always write X as Y.") into the skill; worked examples pasted from failures carried the
model's wrong answer instead of the reference. Every edit therefore passes these checks before it
can reach a candidate, a failed check drops or repairs the edit, and each outcome is counted in a
`CheckLog` that the step files and the summary show.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

from skilltrain.data import Task
from skilltrain.optim.schemas import package_help
from skilltrain.package_view import PACKAGE_HEAD
from skilltrain.skill import MAIN_FILE, Edit, Skill

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ANSWER_LINE = re.compile(
    r"^\s*[-*>]*\s*(answer|output|expected|result|reply|correct)\b\s*[:=]?\s*", re.IGNORECASE)
_ARROW = re.compile(r"\s*(->|=>|→|⇒)\s*")
SHINGLE = 6  # words in a row that count as copying a sentence of our prompts


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive form used by every comparison here."""
    return " ".join(str(text).casefold().split())


def words(text: str) -> list[str]:
    return _WORD.findall(str(text).casefold())


def _shingles(tokens: list[str], n: int = SHINGLE) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def repetitive(text: str) -> bool:
    """A reply stuck in a loop (measured: the 1.5B model's meta notes repeated one sentence
    shape, a word or two changed, until the 2,000-character bound): most of its runs of four
    words occur more than once."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    return len(grams) >= 20 and len(set(grams)) / len(grams) < 0.5


def prompt_text(package: bool = False) -> str:
    """The static text of every optimizer prompt we ship (placeholders removed): what an edit
    must not copy; with `package`, also what a package's prompts add."""
    folder = resources.files("skilltrain.optim").joinpath("prompts")
    parts = [f.read_text("utf-8") for f in folder.iterdir() if f.name.endswith(".md")]
    if package:
        parts += [PACKAGE_HEAD, package_help(True), package_help(False)]
    return re.sub(r"\$[a-z_]+", " ", "\n".join(parts))


@dataclass
class CheckLog:
    """What the checks did in one step: counts by outcome and the dropped edits with reasons."""

    counts: Counter = field(default_factory=Counter)
    dropped: list[dict] = field(default_factory=list)

    def drop(self, edit: Edit, reason: str) -> None:
        self.counts[reason] += 1
        self.dropped.append({"reason": reason, "edit": edit.describe(), "source": edit.source})

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] += n

    def to_json(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "dropped": self.dropped[:50]}


class EditChecker:
    """Checks one step's edits against the skill, our prompts and the rollouts behind them."""

    def __init__(self, skill: Skill, log: CheckLog, *, forbidden: str | None = None):
        self.skill = skill
        self.log = log
        self._skill_norm = normalize("\n".join(skill.text_files().values()))
        forbidden_tokens = words(prompt_text(skill.is_package) if forbidden is None
                                 else forbidden)
        self._forbidden = _shingles(forbidden_tokens)
        self._forbidden_norm = normalize(" ".join(forbidden_tokens))

    def copies_prompt(self, text: str) -> bool:
        tokens = words(text)
        if len(tokens) >= SHINGLE:
            return bool(_shingles(tokens) & self._forbidden)
        short = " ".join(tokens)
        return len(tokens) >= 3 and f" {short} " in f" {self._forbidden_norm} "

    def edits(self, edits: Sequence[Edit], max_support: int) -> list[Edit]:
        """Drop edits that are empty, repeat the skill or copy our prompts; clamp support to the
        rollouts that were shown."""
        kept: list[Edit] = []
        for e in edits:
            reason = self._problem(e)
            if reason:
                self.log.drop(e, reason)
                continue
            if e.support > max_support:
                self.log.count("support_clamped")
                e = e.model_copy(update={"support": max_support})
            kept.append(e)
        return kept

    def _problem(self, e: Edit) -> str | None:
        content, target = e.content.strip(), e.target.strip()
        if e.op != "delete" and not content:
            return "empty_content"
        if e.op != "append" and not target:
            return "empty_target"
        if e.op == "replace" and normalize(content) == normalize(target):
            return "no_change"
        if e.op in ("append", "insert_after") and normalize(content) in self._skill_norm:
            return "repeats_skill"
        if content and self.copies_prompt(content):
            return "copied_prompt"
        return None

    def merged(self, merged: Sequence[Edit], inputs: Sequence[Edit]) -> list[Edit] | None:
        """A merged edit must trace to the edits it merges (most of its words come from one of
        them) and cannot claim more support than those had together. None means the merge
        reply is unusable and the caller falls back to a deterministic merge."""
        if not inputs:
            return list(merged)
        kept: list[Edit] = []
        for e in merged:
            sources = _sources(e, inputs)
            if not sources:
                self.log.drop(e, "untraceable_merge")
                continue
            limit = sum(max(1, i.support) for i in sources)
            if e.support > limit:
                self.log.count("support_clamped")
                e = e.model_copy(update={"support": limit})
            files = {i.file for i in sources}
            if e.file == MAIN_FILE and len(files) == 1 and MAIN_FILE not in files:
                self.log.count("merge_file_restored")  # a merge that forgot which file
                e = e.model_copy(update={"file": files.pop()})
            kept.append(e)
        if not kept:
            self.log.count("merge_fallback")
            return None
        return kept


def _words_of(edit: Edit) -> set[str]:
    return set(words(edit.content + " " + edit.target))


def _sources(edit: Edit, inputs: Sequence[Edit]) -> list[Edit]:
    """The input edits a merged edit draws on (half their words reappear in it); empty when
    together they do not account for most of its words (it says something no analyst said)."""
    mine = _words_of(edit)
    if not mine:
        return []
    used = [i for i in inputs if _words_of(i) and
            len(_words_of(i) & mine) / len(_words_of(i)) >= 0.5]
    covered = set().union(*(_words_of(i) for i in used)) & mine if used else set()
    return used if len(covered) / len(mine) >= 0.6 else []


class Grounding:
    """Worked examples in an edit must carry the reference answer of the train input they quote.

    A line "quotes" a train task when it holds most of the task's distinctive words (words rare
    across the train inputs, so the shared template of the inputs does not count). Such a line,
    or the answer line right after it, must state the task's reference; otherwise the answer is
    replaced by the reference when the line has an answer part (`->`, `Answer:`), or the line is
    dropped. Only train tasks are ever passed here: val and test never reach the optimizer.
    """

    def __init__(self, tasks: Sequence[Task], log: CheckLog):
        self.log = log
        docs = [set(words(t.input)) for t in tasks]
        df = Counter(w for d in docs for w in d)
        cutoff = max(2.0, 0.3 * len(docs))
        self._tasks: list[tuple[set[str], str]] = []
        for task, d in zip(tasks, docs):
            rare = {w for w in d if df[w] <= cutoff}
            if len(rare) >= 2:
                self._tasks.append((rare, display_answer(task.answer)))

    def _quoted(self, line: str) -> list[str]:
        have = set(words(line))
        return [answer for rare, answer in self._tasks
                if len(rare & have) >= max(2, 0.8 * len(rare))]

    def edits(self, edits: Sequence[Edit]) -> list[Edit]:
        kept: list[Edit] = []
        for e in edits:
            if not e.content or not self._tasks:
                kept.append(e)
                continue
            content = self._ground(e.content)
            if content is None:
                self.log.drop(e, "wrong_example")
                continue
            if content != e.content:
                e = e.model_copy(update={"content": content})
            kept.append(e)
        return kept

    def _ground(self, content: str) -> str | None:
        lines = content.split("\n")
        out: list[str] = []
        changed = False
        i = 0
        while i < len(lines):
            line = lines[i]
            answers = self._quoted(line)
            if not answers:
                out.append(line)
                i += 1
                continue
            if len(set(answers)) > 1:  # one line quoting several tasks cannot be checked
                self.log.count("example_line_dropped")
                changed = True
                i += 1
                continue
            answer = answers[0]
            nxt = lines[i + 1] if i + 1 < len(lines) else None
            fixed, used_next = _fix_pair(line, nxt, answer)
            if fixed is None:
                self.log.count("example_line_dropped")
                changed = True
            else:
                if fixed != ([line, nxt] if used_next else [line]):
                    self.log.count("example_repaired")
                    changed = True
                out.extend(fixed)
            i += 2 if used_next else 1
        if not changed:
            return content
        result = "\n".join(out).strip("\n")
        return result if result.strip() else None


def _fix_pair(line: str, nxt: str | None, answer: str) -> tuple[list[str] | None, bool]:
    """The example (line, maybe its answer line) made to carry `answer`, or None to drop it."""
    want = normalize(answer)
    arrow = list(_ARROW.finditer(line))
    if arrow:
        m = arrow[-1]
        right = line[m.end():].strip().strip("`'\".")
        if normalize(right) == want:
            return [line], False
        return [line[: m.end()] + answer], False
    if nxt is not None and _ANSWER_LINE.match(nxt):
        head = _ANSWER_LINE.match(nxt)
        value = nxt[head.end():].strip().strip("`'\".")  # type: ignore[union-attr]
        if normalize(value) == want:
            return [line, nxt], True
        return [line, nxt[: head.end()] + answer], True  # type: ignore[union-attr]
    if want and want in normalize(line):
        return [line], False
    return None, False


def display_answer(answer: object) -> str:
    """A reference answer as text (for tables and examples)."""
    if isinstance(answer, str):
        return answer
    try:
        return json.dumps(answer, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(answer)
