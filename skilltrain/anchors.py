"""Where an edit's anchor is in a skill: a ladder from exact to fuzzy, each rung deciding alone.

Measured with the 1.5B optimizer: it mis-copies anchors (a space more or fewer, a capital letter,
a word changed), so an exact-match-only lookup ended most anchored edits `anchor_missing`. The
ladder forgives those slips without ever guessing:

1. exact: the target (or the target stripped) occurs once -> `applied`;
2. normalised: with whitespace runs collapsed and case folded on both sides, the target occurs
   once; the match is mapped back to its exact span in the original -> `applied_normalized`;
3. fuzzy: one line (or window of as many consecutive lines as the target has) is clearly the
   closest, at least `FUZZY_MIN_SCORE` similar and `FUZZY_MARGIN` ahead of the next ->
   `applied_fuzzy`. Targets shorter than `FUZZY_MIN_CHARS` skip it: too easy to hit the wrong
   line.

A rung that finds the target twice answers `ambiguous_anchor` and the ladder stops there: a
looser rung must not pick one of several places a stricter one saw. A match that touches a
protected span answers `protected_region`, never some other place. The fuzzy rung scores the
protected lines too, for the same reason: a mis-copied protected line must not land on the
editable line that happens to be the next most similar.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Literal

Status = Literal["applied", "applied_normalized", "applied_fuzzy", "anchor_missing",
                 "ambiguous_anchor", "protected_region"]
Span = tuple[int, int]

FUZZY_MIN_SCORE = 0.85
FUZZY_MARGIN = 0.05
FUZZY_MIN_CHARS = 12

_AMBIGUOUS: Status = "ambiguous_anchor"
_MISSING: Status = "anchor_missing"


def resolve(text: str, target: str,
            protected_spans: Sequence[Span]) -> tuple[int, int, Status] | Status:
    """The span of `text` that `target` names and the rung that found it, or why there is none.

    Pure and deterministic: the same text, target and spans always give the same answer.
    """
    for rung, status in ((_exact, "applied"), (_normalized, "applied_normalized"),
                         (_fuzzy, "applied_fuzzy")):
        found = rung(text, target)
        if found is None:
            continue
        if isinstance(found, str):
            return found
        start, end = found
        if any(start < e and end > s for s, e in protected_spans):
            return "protected_region"
        return start, end, status
    return _MISSING


def normalize(text: str) -> str:
    """Whitespace runs as one space, case folded, ends stripped: what rung 2 compares."""
    return " ".join(text.split()).casefold()


def similarity_function() -> Callable[[str, str], float]:
    """A 0..1 string similarity: rapidfuzz's indel ratio when installed, else difflib's.

    Looked up per call (the import is cached) so that tests can hide rapidfuzz; the two agree
    closely on the short lines anchors are, and difflib keeps a bare install working.
    """
    try:
        from rapidfuzz import fuzz
    except ImportError:
        return lambda a, b: difflib.SequenceMatcher(None, a, b).ratio()
    return lambda a, b: fuzz.ratio(a, b) / 100.0


# -- rungs: each answers None (nothing here, try the next), a status, or a span ---------------


def _exact(text: str, target: str) -> Span | Status | None:
    for candidate in (target, target.strip()):
        if not candidate:
            continue
        start = text.find(candidate)
        if start == -1:
            continue
        if text.find(candidate, start + 1) != -1:  # also catches overlapping matches
            return _AMBIGUOUS
        return start, start + len(candidate)
    return None


def _normalized_with_map(text: str) -> tuple[str, list[int]]:
    """`text` with whitespace runs as one space and case folded, and for each character of the
    result the index in `text` it came from (casefold may turn one character into several)."""
    out: list[str] = []
    origin: list[int] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            out.append(" ")
            origin.append(i)
            while i < n and text[i].isspace():
                i += 1
            continue
        folded = text[i].casefold()
        out.append(folded)
        origin.extend([i] * len(folded))
        i += 1
    return "".join(out), origin


def _normalized(text: str, target: str) -> Span | Status | None:
    needle = normalize(target)
    if not needle:
        return None
    hay, origin = _normalized_with_map(text)
    spans: list[Span] = []
    pos = hay.find(needle)
    while pos != -1 and len(spans) < 2:
        stop = pos + len(needle)
        # only matches that start and end on whole original characters (casefold expansions)
        if (pos == 0 or origin[pos - 1] != origin[pos]) and (
                stop == len(hay) or origin[stop] != origin[stop - 1]):
            spans.append((origin[pos], origin[stop - 1] + 1))
        pos = hay.find(needle, pos + 1)
    if not spans:
        return None
    return spans[0] if len(spans) == 1 else _AMBIGUOUS


def _candidates(text: str, size: int) -> dict[Span, str]:
    """Every window of `size` consecutive lines, as its span without the surrounding
    whitespace, with its normalised text. Blank windows are left out; windows that differ only
    by blank lines at their ends share one span and count once."""
    starts = [0]
    starts += [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    ends = [s - 1 for s in starts[1:]] + [len(text)]
    out: dict[Span, str] = {}
    for first in range(len(starts) - size + 1):
        lo, hi = starts[first], ends[first + size - 1]
        chunk = text[lo:hi]
        body = chunk.strip()
        if not body:
            continue
        start = lo + (len(chunk) - len(chunk.lstrip()))
        out.setdefault((start, start + len(body)), normalize(body))
    return out


def _fuzzy(text: str, target: str) -> Span | Status | None:
    stripped = target.strip()
    if len(stripped) < FUZZY_MIN_CHARS:
        return None
    needle = normalize(stripped)
    score = similarity_function()
    ranked = sorted(((score(needle, cand), span)
                     for span, cand in _candidates(text, stripped.count("\n") + 1).items()),
                    key=lambda pair: (-pair[0], pair[1]))
    if not ranked or ranked[0][0] < FUZZY_MIN_SCORE:
        return None
    best, span = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    if second >= best - FUZZY_MARGIN:
        return _AMBIGUOUS if second >= FUZZY_MIN_SCORE else _MISSING
    return span
