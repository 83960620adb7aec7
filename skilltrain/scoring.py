"""Scorers: how a rollout's answer is judged against the task's reference.

A scorer is anything with `score(task, rollout) -> Score` (or an awaitable of one, for judges
that call a model). User functions given as `module:function` are wrapped so they may return a
Score, a bool, a number, or a dict with `hard`/`soft`/`feedback`.
"""

from __future__ import annotations

import inspect
import json
import re
import string
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from skilltrain.bench_scorers import BENCH_SCORERS
from skilltrain.data import Task
from skilltrain.loading import load_callable
from skilltrain.records import Rollout, Score
from skilltrain.rules import RuleError, RuleJudge


class ScorerError(ValueError):
    """A scorer name or option that cannot be used."""


@runtime_checkable
class Scorer(Protocol):
    def score(self, task: Task, rollout: Rollout) -> Score | Awaitable[Score]: ...


_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def normalize(text: str) -> str:
    return " ".join(str(text).lower().translate(_PUNCT).split())


def _clip(text: Any, n: int = 120) -> str:
    s = str(text).strip()
    return s if len(s) <= n else s[: n - 3] + "..."


def _verdict(ok: bool, task: Task, answer: str, soft: float | None = None, note: str = "") -> Score:
    feedback = "correct" if ok else f"expected {_clip(task.answer)!r}, got {_clip(answer)!r}"
    if note and not ok:
        feedback += f" ({note})"
    return Score(hard=1.0 if ok else 0.0, soft=(1.0 if ok else 0.0) if soft is None else soft,
                 feedback=feedback)


@dataclass(frozen=True)
class Exact:
    """The answer, stripped of surrounding whitespace, equals the reference exactly."""

    def score(self, task: Task, rollout: Rollout) -> Score:
        answer = rollout.answer.strip()
        ok = answer == str(task.answer).strip()
        soft = 1.0 if ok else (0.5 if normalize(answer) == normalize(task.answer) else 0.0)
        return _verdict(ok, task, answer, soft, "differs only in case/punctuation" if soft else "")


@dataclass(frozen=True)
class Normalized:
    """Equal after lower-casing, dropping punctuation and collapsing whitespace."""

    def score(self, task: Task, rollout: Rollout) -> Score:
        return _verdict(normalize(rollout.answer) == normalize(task.answer), task, rollout.answer)


def parse_number(text: str) -> float | None:
    try:
        return float(str(text).strip().replace(",", ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class Numeric:
    """The answer is the reference number within a tolerance; the last number in the text counts
    for partial credit, so 'The answer is 42' earns soft credit but not hard."""

    tolerance: float = 1e-6
    relative: bool = False

    def _close(self, got: float, want: float) -> bool:
        bound = self.tolerance * abs(want) if self.relative else self.tolerance
        return abs(got - want) <= bound

    def score(self, task: Task, rollout: Rollout) -> Score:
        want = parse_number(str(task.answer))
        if want is None:
            raise ScorerError(f"numeric scorer: task {task.id!r} reference {task.answer!r} "
                              "is not a number")
        whole = parse_number(rollout.answer)
        if whole is not None and self._close(whole, want):
            return _verdict(True, task, rollout.answer)
        numbers = _NUMBER_RE.findall(rollout.answer)
        last = parse_number(numbers[-1]) if numbers else None
        if last is not None and self._close(last, want):
            return _verdict(False, task, rollout.answer, 0.5, "right number, but extra text")
        return _verdict(False, task, rollout.answer)


@dataclass(frozen=True)
class Contains:
    """The reference appears in the answer (case-insensitive)."""

    def score(self, task: Task, rollout: Rollout) -> Score:
        ok = str(task.answer).strip().lower() in rollout.answer.lower()
        return _verdict(ok, task, rollout.answer)


@dataclass(frozen=True)
class Regex:
    """The reference (or a fixed `pattern`) is a regular expression the answer must match."""

    pattern: str | None = None
    full: bool = False

    def score(self, task: Task, rollout: Rollout) -> Score:
        pattern = self.pattern if self.pattern is not None else str(task.answer)
        match = (re.fullmatch if self.full else re.search)(pattern, rollout.answer.strip())
        ok = match is not None
        return Score(hard=float(ok), soft=float(ok),
                     feedback="correct" if ok else f"answer does not match /{_clip(pattern)}/")


@dataclass(frozen=True)
class TokenF1:
    """Token-overlap F1 as soft credit; hard credit when F1 reaches `threshold`."""

    threshold: float = 1.0

    def score(self, task: Task, rollout: Rollout) -> Score:
        got = normalize(rollout.answer).split()
        want = normalize(task.answer).split()
        common = sum((Counter(got) & Counter(want)).values())
        if not got or not want or not common:
            f1 = float(got == want)
        else:
            precision, recall = common / len(got), common / len(want)
            f1 = 2 * precision * recall / (precision + recall)
        ok = f1 >= self.threshold
        return _verdict(ok, task, rollout.answer, round(f1, 4))


_CHOICE_KEYWORD_RE = re.compile(
    r"(?i:answer|option|choice)(?:\s+(?i:is))?\s*[:(\[]?\s*\b([A-J])\b")
_CHOICE_LEAD_RE = re.compile(r"^\s*[(\[]?([A-Ja-j])(?:[)\].:]|\s*$)|^\s*([A-J])\s+(?![a-z])")
_CHOICE_ANY_RE = re.compile(r"\b([A-J])\b(?!\s+[a-z])")


def choice_letter(text: str) -> str:
    """The option a reply names: 'Answer: C', a leading 'B)', else a standalone capital that is
    not the word 'A' or 'I' starting a sentence."""
    for regex in (_CHOICE_KEYWORD_RE, _CHOICE_LEAD_RE, _CHOICE_ANY_RE):
        m = regex.search(text)
        if m:
            return next(g for g in m.groups() if g).upper()
    return ""


@dataclass(frozen=True)
class Choice:
    """Multiple choice: the first standalone option letter in the answer equals the reference."""

    def score(self, task: Task, rollout: Rollout) -> Score:
        want = str(task.answer).strip().upper()[:1]
        text = rollout.answer.strip()
        got = choice_letter(text)
        return _verdict(got == want, task, text, note="" if got else "no option letter found")


@dataclass(frozen=True)
class FunctionScorer:
    """Wraps a user function `fn(task, answer)` returning Score, bool, number or dict."""

    fn: Callable[..., Any]
    label: str = "python"

    def score(self, task: Task, rollout: Rollout) -> Score | Awaitable[Score]:
        result = self.fn(task, rollout.answer)
        if inspect.isawaitable(result):
            return _await_and_coerce(result, self.label)
        return coerce_score(result, self.label)


async def _await_and_coerce(result: Awaitable[Any], label: str) -> Score:
    return coerce_score(await result, label)


def coerce_score(result: Any, label: str = "scorer") -> Score:
    if isinstance(result, Score):
        return result
    if isinstance(result, bool):
        return Score(hard=float(result), soft=float(result), feedback="")
    if isinstance(result, (int, float)):
        if not _unit(result):  # compared before float(): a huge int would overflow it
            raise ScorerError(f"{label}: returned {_clip(result)}, expected a number in [0, 1]")
        value = float(result)
        return Score(hard=value, soft=value, feedback="")
    if isinstance(result, dict) and "hard" in result:
        hard, soft = result["hard"], result.get("soft", result["hard"])
        if not all(_unit(v) for v in (hard, soft)):
            raise ScorerError(f"{label}: returned {_clip(repr(result))}; 'hard' and 'soft' "
                              "must be numbers in [0, 1]")
        return Score(hard=float(hard), soft=float(soft),
                     feedback=str(result.get("feedback", "")))
    raise ScorerError(f"{label}: returned {type(result).__name__}; expected Score, bool, "
                      "a number in [0, 1] or a dict with 'hard'")


def _unit(value: Any) -> bool:
    """A number in [0, 1]; NaN and infinities fail the comparison."""
    return isinstance(value, (int, float)) and 0 <= value <= 1


def check_scorer(scorer: Scorer, task: Task) -> None:
    """Score `task` with its own reference as the answer, before any model call: a user scorer
    that raises, or returns what is not a score, would otherwise surface only after the paid
    rollouts of a whole batch. Only the shape is checked (a reference need not score 1, e.g.
    a regex), and an awaitable result is not awaited: a judge would call a model."""
    label = getattr(scorer, "label", None) or type(scorer).__name__
    answer = task.answer if isinstance(task.answer, str) else json.dumps(
        task.answer, ensure_ascii=False, default=str)
    probe = Rollout(task_id=task.id, skill_hash="check", answer=answer)
    if any(inspect.iscoroutinefunction(f) for f in (getattr(scorer, "fn", None), scorer.score)):
        return
    try:
        result = scorer.score(task, probe)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            return
        coerce_score(result, f"scorer {label!r}")
    except ScorerError as exc:
        raise ScorerError(f"{exc} (checked on task {task.id!r} with its reference as the "
                          "answer)") from None
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, in one line
        raise ScorerError(f"scorer {label!r} raised {type(exc).__name__}: "
                          f"{_clip(' '.join(str(exc).split()), 200)} on task {task.id!r} with "
                          "its reference as the answer") from None


class Rules:
    """Rule judges (rules.py) from the config's `rules` and each task's `rules` field: hard when
    all pass, soft the fraction passing. A bad rule is a ScorerError naming it, in one line, so
    the CLI exits 2 before (config rules) or at the first rollout of (task rules) a run."""

    label = "rules"

    def __init__(self, rules: Sequence[Any] = ()) -> None:
        try:
            self.judge = RuleJudge(rules)
        except RuleError as exc:
            raise ScorerError(f"scorer 'rules': {exc}") from None

    def score(self, task: Task, rollout: Rollout) -> Score:
        try:
            return self.judge.score(task, rollout)
        except RuleError as exc:
            raise ScorerError(f"scorer 'rules': {exc}") from None


BUILTIN: dict[str, type] = {
    "exact": Exact,
    "normalized": Normalized,
    "numeric": Numeric,
    "contains": Contains,
    "regex": Regex,
    "f1": TokenF1,
    "choice": Choice,
    "rules": Rules,
    **BENCH_SCORERS,  # squad, anls, officeqa, reward (bench_scorers.py)
}


def load_function(spec: str) -> Callable[..., Any]:
    return load_callable(spec, "scorer", ScorerError)


def make_scorer(spec: str | Callable[..., Any] | Scorer, **options: Any) -> Scorer:
    """Build a scorer from a built-in name (with options), `module:function`, or a callable."""
    if isinstance(spec, str):
        if spec in BUILTIN:
            try:
                return BUILTIN[spec](**options)
            except TypeError:
                fields = ", ".join(inspect.signature(BUILTIN[spec]).parameters) or "none"
                raise ScorerError(f"scorer {spec!r}: unknown option(s) {sorted(options)}; "
                                  f"accepted: {fields}") from None
        if spec == "judge" or spec.startswith("judge:"):  # judge.py: it needs a model client
            raise ScorerError(f"scorer {spec!r}: a judge scores inside `skilltrain train` "
                              "(its model is a run's `judge` role); not here")
        if spec.startswith("python:"):
            spec = spec[len("python:"):]
        if ":" in spec:
            return FunctionScorer(load_function(spec), spec)
        raise ScorerError(f"scorer {spec!r}: unknown; expected one of {', '.join(BUILTIN)}, "
                          "or 'module:function'")
    if hasattr(spec, "score"):
        return spec  # type: ignore[return-value]
    if callable(spec):
        return FunctionScorer(spec, getattr(spec, "__name__", "python"))
    raise ScorerError(f"scorer: expected a name, 'module:function' or callable, got {spec!r}")


async def score_rollout(scorer: Scorer, task: Task, rollout: Rollout) -> Score:
    result = scorer.score(task, rollout)
    if inspect.isawaitable(result):
        result = await result
    return coerce_score(result)
