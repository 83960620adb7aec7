"""The paper benchmarks' scorers: SQuAD exact match and F1 (SearchQA), ANLS (DocVQA), and
number-aware exact match and F1 (OfficeQA), plus `reward` for the environment harness.

Each reads the answer from the last `<answer>...</answer>` in the reply, else its last non-empty
line: the benchmarks' prompts ask for the tags, and a reply that forgets them still gets judged
on what it ended with rather than on its reasoning. A reference may be a list of acceptable
answers or one string with `|` between them; a reply scores the best over them.

Written from the published definitions (SQuAD v1.1's `normalize_answer` and F1, the Robust
Reading Competition's ANLS), not from their code. This module imports nothing above records and
data, so scoring.py can register it without a cycle.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from skilltrain.data import Task
from skilltrain.records import Rollout, Score

_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def extract_answer(text: str) -> str:
    """The last `<answer>` tag's content, else the last non-empty line, stripped."""
    tags = _ANSWER_TAG_RE.findall(text or "")
    if tags:
        return tags[-1].strip()
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def references(answer: Any) -> list[str]:
    """Acceptable answers: a list as given, or a string split on `|` (empty parts dropped)."""
    if isinstance(answer, (list, tuple)):
        refs = [str(a) for a in answer]
    else:
        refs = [part for part in str(answer).split("|") if part.strip()] or [str(answer)]
    return refs


def squad_normalize(text: str) -> str:
    """SQuAD's normalisation: lower-case, drop punctuation, drop the articles a/an/the, and
    collapse whitespace (in that order, as the official definition does)."""
    lowered = str(text).lower()
    no_punct = "".join(ch for ch in lowered if ch not in _PUNCT)
    return " ".join(_ARTICLES_RE.sub(" ", no_punct).split())


def token_f1(got: Sequence[str], want: Sequence[str]) -> float:
    """Bag-of-tokens F1; two empty answers agree (SQuAD v2's rule for no-answer)."""
    if not got or not want:
        return float(list(got) == list(want))
    common = sum((Counter(got) & Counter(want)).values())
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def _feedback(ok: bool, refs: list[str], answer: str, soft: float, metric: str) -> str:
    if ok:
        return "correct"
    shown = " | ".join(refs)
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return f"expected {shown!r}, got {answer[:120]!r} ({metric} {soft:.3f})"


@dataclass(frozen=True)
class Squad:
    """SearchQA: hard = normalised exact match with any reference, soft = best token F1."""

    def score(self, task: Task, rollout: Rollout) -> Score:
        answer = extract_answer(rollout.answer)
        got = squad_normalize(answer)
        refs = references(task.answer)
        hard = any(got == squad_normalize(r) for r in refs)
        f1 = max(token_f1(got.split(), squad_normalize(r).split()) for r in refs)
        soft = 1.0 if hard else round(f1, 4)
        return Score(hard=float(hard), soft=soft, feedback=_feedback(hard, refs, answer, soft,
                                                                     "F1"))


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions each cost 1), two rows of memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls_similarity(got: str, want: str, threshold: float = 0.5) -> float:
    """1 - normalised Levenshtein distance, or 0 when that distance is not below `threshold`.
    Both sides are lower-cased with whitespace collapsed; the distance is divided by the longer
    string's length. At a distance of exactly 0.5 the similarity is 0 (the definition keeps
    1 - NL only while NL < threshold)."""
    a, b = " ".join(got.lower().split()), " ".join(want.lower().split())
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    distance = levenshtein(a, b) / longest
    return 0.0 if distance >= threshold else 1.0 - distance


@dataclass(frozen=True)
class Anls:
    """DocVQA: soft = ANLS (best over references), hard = ANLS >= `hard_at` (default 0.999,
    that is an exact match after case and whitespace: ANLS is the benchmark's number, and hard
    credit is kept for answers that need no OCR-style forgiveness)."""

    threshold: float = 0.5
    hard_at: float = 0.999

    def score(self, task: Task, rollout: Rollout) -> Score:
        answer = extract_answer(rollout.answer)
        refs = references(task.answer)
        value = round(max(anls_similarity(answer, r, self.threshold) for r in refs), 4)
        hard = value >= self.hard_at
        return Score(hard=float(hard), soft=value,
                     feedback=_feedback(hard, refs, answer, value, "ANLS"))


_SCALES = {"thousand": 3, "k": 3, "million": 6, "mn": 6, "m": 6, "mm": 6, "billion": 9,
           "bn": 9, "b": 9, "trillion": 12, "tn": 12}
_UNITS = {"$", "usd", "dollar", "dollars", "us$", "€", "eur", "euro", "euros", "£", "gbp",
          "%", "percent", "pct"}
_TOKEN_RE = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+|[$€£%]|[^\W\d_]+", re.UNICODE)


def _number(token: str) -> Decimal | None:
    """A digit token as a Decimal; thousands separators must be well placed ('1,200' yes,
    '12,00' no, so a European decimal comma is not read as a thousands separator)."""
    if "," in token and not re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", token):
        return None
    try:
        return Decimal(token.replace(",", ""))
    except InvalidOperation:
        return None


def _canonical(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def office_tokens(text: str) -> list[str]:
    """Tokens for OfficeQA: words lower-cased (articles dropped), each number with the scale
    word after it ('1.2 billion', '1,200 million') turned into one canonical number
    ('1200000000'), and currency and percent units dropped."""
    raw = _TOKEN_RE.findall(str(text).lower())
    out: list[str] = []
    i = 0
    while i < len(raw):
        token = raw[i]
        value = _number(token) if token[-1].isdigit() else None
        if value is not None:
            if i + 1 < len(raw) and raw[i + 1] in _SCALES:
                value = value.scaleb(_SCALES[raw[i + 1]])
                i += 1
            out.append(_canonical(value))
        elif token not in _UNITS and token not in ("a", "an", "the"):
            out.append(token)
        i += 1
    return out


@dataclass(frozen=True)
class OfficeQA:
    """OfficeQA: hard = the answer's tokens equal a reference's after `office_tokens` (so
    '$1.2 billion' == '1,200 million' == '1200000000'), or both are a single number within
    `tolerance` (relative; default 1e-9, i.e. exact up to float error); soft = token F1 on
    the same tokens. Units are ignored, not converted: '5%' equals '5'."""

    tolerance: float = 1e-9

    def _same(self, got: list[str], want: list[str]) -> bool:
        if got == want:
            return True
        if len(got) == len(want) == 1:
            a, b = _number(got[0]), _number(want[0])
            if a is not None and b is not None:
                return abs(a - b) <= Decimal(str(self.tolerance)) * abs(b)
        return False

    def score(self, task: Task, rollout: Rollout) -> Score:
        answer = extract_answer(rollout.answer)
        got = office_tokens(answer)
        refs = references(task.answer)
        wants = [office_tokens(r) for r in refs]
        hard = any(self._same(got, w) for w in wants)
        soft = 1.0 if hard else round(max(token_f1(got, w) for w in wants), 4)
        return Score(hard=float(hard), soft=soft, feedback=_feedback(hard, refs, answer, soft,
                                                                     "F1"))


@dataclass(frozen=True)
class Reward:
    """The environment harness's episode: soft = the final reward clipped to [0, 1]; hard when
    the reward reaches 1, or when the episode ended (`done`) with a positive reward. A rollout
    that no environment played (another harness) scores 0 and says so."""

    def score(self, task: Task, rollout: Rollout) -> Score:
        episode = next((e for e in reversed(rollout.trajectory)
                        if e.get("role") == "harness" and e.get("event") == "episode"), None)
        if episode is None:
            return Score(hard=0.0, soft=0.0, feedback="no episode in the trajectory: the "
                         "reward scorer needs `harness: environment`")
        reward, done = float(episode.get("reward", 0.0)), bool(episode.get("done"))
        hard = reward >= 1 or (done and reward > 0)
        soft = min(1.0, max(0.0, reward))
        how = "done" if done else f"not done after {episode.get('steps')} steps"
        return Score(hard=float(hard), soft=soft,
                     feedback="correct" if hard else f"episode {how}, reward {reward:g}")


BENCH_SCORERS: dict[str, type] = {"squad": Squad, "anls": Anls, "officeqa": OfficeQA,
                                  "reward": Reward}
