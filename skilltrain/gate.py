"""Acceptance gates: should a candidate skill replace the incumbent?

A gate is judged by what a whole run ships, not by one decision's p-value: the true gain of the
final skill, the chance that it is truly worse than the starting skill, and the target calls spent
(``bench/gate_sim.py`` measures all three). Every rule here compares the two skills item by item on
the same validation items, so item difficulty cancels, and talks to the target only through an
``Evaluate`` callable that scores a skill on chosen items on demand, which makes racing possible.

Rules (``make_gate(name, **options)``):

- ``strict``: the paper's rule. Accept iff the candidate's mean is strictly above the incumbent's
  on the compared items; ties are rejected.
- ``strict_racing``: the same decisions as ``strict``, but the candidate is scored chunk by chunk
  and scoring stops once the outcome is certain.
- ``paired``: a sequential probability ratio test on the items where the two skills disagree,
  with early rejection of clearly worse candidates and re-sampling of the disagreements only when
  the split alone leaves the decision open. The default; see ``PairedGate``.
- ``sign_test``: a one-sided exact sign test on the whole split, the textbook significance test,
  kept as a conservative option and a baseline for the bench.

Infrastructure failures (an outcome of ``None``, after the caller's retries) drop the item from
both sides of the comparison and are counted in ``Decision.excluded``; they are never scored as
wrong. No rule asks twice for the same (skill, item, sample) within one decision.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Protocol

Outcome = float | None
"""A per-item score in [0, 1] (hard, soft or a mix); ``None`` is an infrastructure failure."""


class Evaluate(Protocol):
    """Scores ``skill`` on ``task_ids`` at sample index ``sample``; one entry per id.

    The caller caches by (skill hash, task id, sample), so repeating a triple costs nothing; a new
    sample index asks the target again.
    """

    async def __call__(
        self, skill: object, task_ids: Sequence[str], sample: int = 0
    ) -> dict[str, Outcome]: ...


@dataclass(frozen=True)
class Decision:
    """The outcome of one gate decision, with enough numbers to explain it in a report."""

    accepted: bool
    rule: str
    candidate_score: float
    """Candidate mean (first sample) over the compared items."""
    incumbent_score: float
    """Incumbent mean (first sample) over the same items."""
    items_used: int
    """Validation items the candidate was scored on."""
    new_evaluations: int
    """Distinct (skill, item, sample) triples requested in this decision, both sides."""
    excluded: int
    """Items dropped because either side had an infrastructure failure."""
    stopped_early: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Gate(Protocol):
    """An acceptance rule. ``items`` is the validation split in a fixed (seeded) order."""

    name: str

    async def decide(
        self, candidate: object, incumbent: object, items: Sequence[str], evaluate: Evaluate
    ) -> Decision: ...


# --------------------------------------------------------------------------------------------
# Shared machinery: one decision's requests, and the paired outcomes they produced.


def _checked(task_id: str, value: object) -> Outcome:
    """Validate one outcome: a scorer bug must surface, not be averaged in."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"outcome for task {task_id!r} must be None or a number in [0, 1], "
                         f"got {value!r}")
    return float(value)


class _Ledger:
    """The requests of one decision: each (side, item, sample) is asked for at most once."""

    def __init__(self, evaluate: Evaluate, candidate: object, incumbent: object) -> None:
        self._evaluate = evaluate
        self._skills = {"candidate": candidate, "incumbent": incumbent}
        self._seen: dict[tuple[str, str, int], Outcome] = {}
        self._candidate_items: set[str] = set()

    @property
    def new_evaluations(self) -> int:
        return len(self._seen)

    @property
    def candidate_items(self) -> int:
        return len(self._candidate_items)

    async def fetch(self, side: str, items: Sequence[str], sample: int) -> dict[str, Outcome]:
        missing = [t for t in dict.fromkeys(items) if (side, t, sample) not in self._seen]
        if missing:
            got = await self._evaluate(self._skills[side], missing, sample)
            for t in missing:
                if t not in got:
                    raise ValueError(f"evaluate returned no outcome for task {t!r}")
                self._seen[(side, t, sample)] = _checked(t, got[t])
            if side == "candidate":
                self._candidate_items.update(missing)
        return {t: self._seen[(side, t, sample)] for t in items}

    async def fetch_both(
        self, items: Sequence[str], sample: int
    ) -> tuple[dict[str, Outcome], dict[str, Outcome]]:
        """Both sides at once, so a real target can serve them concurrently."""
        cand, inc = await asyncio.gather(
            self.fetch("candidate", items, sample), self.fetch("incumbent", items, sample)
        )
        return cand, inc


class _Pairs:
    """Per-item outcomes of both sides; an item with a failure on either side is excluded."""

    def __init__(self) -> None:
        self.cand: dict[str, list[float]] = {}
        self.inc: dict[str, list[float]] = {}
        self.excluded: list[str] = []
        self.failed_resamples = 0

    def add_first(self, item: str, x: Outcome, y: Outcome) -> float | None:
        """Record the first sample of both sides; returns the difference, or None if excluded."""
        if x is None or y is None:
            self.excluded.append(item)
            return None
        self.cand[item] = [x]
        self.inc[item] = [y]
        return x - y

    def add_resample(self, item: str, x: Outcome, y: Outcome) -> None:
        """Add one more sample of each side; a failed one is skipped, not scored."""
        for store, value in ((self.cand, x), (self.inc, y)):
            if value is None:
                self.failed_resamples += 1
            else:
                store[item].append(value)

    @property
    def compared(self) -> int:
        return len(self.cand)

    def first_means(self) -> tuple[float, float]:
        if not self.cand:
            return 0.0, 0.0
        n = len(self.cand)
        return (math.fsum(v[0] for v in self.cand.values()) / n,
                math.fsum(v[0] for v in self.inc.values()) / n)

    def resolved_diffs(self) -> dict[str, float]:
        """Per-item difference of the sample means of the two sides."""
        return {t: _mean(self.cand[t]) - _mean(self.inc[t]) for t in self.cand}

    def exact_first_diff(self) -> Fraction:
        """Sum of first-sample differences in exact arithmetic, so racing and strict agree."""
        return sum((Fraction(self.cand[t][0]) - Fraction(self.inc[t][0]) for t in self.cand),
                   Fraction(0))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def _identical(rule: str) -> Decision:
    return Decision(False, rule, 0.0, 0.0, 0, 0, 0, False,
                    "candidate is the incumbent itself; nothing to compare", {})


def _decision(rule: str, accepted: bool, pairs: _Pairs, ledger: _Ledger, *, stopped_early: bool,
              reason: str, evidence: dict[str, Any]) -> Decision:
    cand, inc = pairs.first_means()
    return Decision(
        accepted=accepted, rule=rule, candidate_score=cand, incumbent_score=inc,
        items_used=ledger.candidate_items, new_evaluations=ledger.new_evaluations,
        excluded=len(pairs.excluded), stopped_early=stopped_early, reason=reason,
        evidence=evidence,
    )


def _versus(pairs: _Pairs) -> str:
    cand, inc = pairs.first_means()
    return f"candidate {cand:.3f} vs incumbent {inc:.3f} on {pairs.compared} items"


# --------------------------------------------------------------------------------------------
# The rules.


@dataclass(frozen=True)
class StrictGate:
    """The paper's rule: accept iff the candidate's mean is strictly greater; ties are rejected.

    Both sides are compared on the same items (an item that failed on either side is dropped from
    both). Sums are compared exactly, so ``strict_racing`` can reproduce every decision.
    """

    name: ClassVar[str] = "strict"

    async def decide(self, candidate: object, incumbent: object, items: Sequence[str],
                     evaluate: Evaluate) -> Decision:
        if candidate is incumbent:
            return _identical(self.name)
        ledger = _Ledger(evaluate, candidate, incumbent)
        pairs = _Pairs()
        cand, inc = await ledger.fetch_both(items, 0)
        for t in dict.fromkeys(items):
            pairs.add_first(t, cand[t], inc[t])
        diff = pairs.exact_first_diff()
        accepted = pairs.compared > 0 and diff > 0
        if pairs.compared == 0:
            reason = f"no item could be compared ({len(pairs.excluded)} excluded)"
        else:
            reason = f"{_versus(pairs)}: {'accepted' if accepted else 'not strictly better'}"
        return _decision(self.name, accepted, pairs, ledger, stopped_early=False, reason=reason,
                         evidence={"sum_difference": float(diff)})


@dataclass(frozen=True)
class StrictRacingGate:
    """``strict``'s decisions at a fraction of the cost.

    The incumbent's first-sample outcomes are read up front (they are cached from its own
    validation, so this is normally free); the candidate is scored ``chunk`` items at a time in
    the given order. After each chunk the rule bounds the final difference of sums using what the
    remaining items could still contribute (each between ``-y`` and ``1 - y``): it stops and
    rejects when even a perfect rest cannot lift the candidate strictly above the incumbent, and,
    with ``stop_when_won``, stops and accepts when even a worthless rest cannot pull it down to a
    tie. Items where the incumbent failed are skipped: they would be excluded anyway.
    """

    name: ClassVar[str] = "strict_racing"
    chunk: int = 10
    stop_when_won: bool = True

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError("chunk must be at least 1")

    async def decide(self, candidate: object, incumbent: object, items: Sequence[str],
                     evaluate: Evaluate) -> Decision:
        if candidate is incumbent:
            return _identical(self.name)
        ledger = _Ledger(evaluate, candidate, incumbent)
        pairs = _Pairs()
        order = list(dict.fromkeys(items))
        inc = await ledger.fetch("incumbent", order, 0)
        pairs.excluded.extend(t for t in order if inc[t] is None)
        todo = [t for t in order if inc[t] is not None]
        rest_upper = sum((1 - Fraction(inc[t]) for t in todo), Fraction(0))
        rest_lower = -sum((Fraction(inc[t]) for t in todo), Fraction(0))
        diff = Fraction(0)
        looks: list[int] = []
        verdict: bool | None = None
        for chunk in _chunks(todo, self.chunk):
            cand = await ledger.fetch("candidate", chunk, 0)
            for t in chunk:
                y = Fraction(inc[t])
                rest_upper -= 1 - y
                rest_lower += y
                d = pairs.add_first(t, cand[t], inc[t])
                if d is not None:
                    diff += Fraction(cand[t]) - y
            looks.append(ledger.candidate_items)
            if diff + rest_upper <= 0:
                verdict = False
                break
            if self.stop_when_won and diff + rest_lower > 0:
                verdict = True
                break
        accepted = bool(verdict) if verdict is not None else (pairs.compared > 0 and diff > 0)
        stopped = ledger.candidate_items < len(todo)
        if stopped and accepted:
            reason = f"{_versus(pairs)}: ahead beyond what the remaining items can undo"
        elif stopped:
            reason = f"{_versus(pairs)}: cannot overtake even if it solves every remaining item"
        elif pairs.compared == 0:
            reason = f"no item could be compared ({len(pairs.excluded)} excluded)"
        else:
            reason = f"{_versus(pairs)}: {'accepted' if accepted else 'not strictly better'}"
        return _decision(self.name, accepted, pairs, ledger, stopped_early=stopped, reason=reason,
                         evidence={"sum_difference": float(diff), "looks": looks})


@dataclass(frozen=True)
class PairedGate:
    """Sequential test on the items where candidate and incumbent disagree (the default rule).

    **Decision rule.** Items are scored in the given order, ``chunk`` at a time, the incumbent's
    first-sample outcomes being read from its cache. Per compared item, ``z`` is the difference
    of the two sides' mean outcomes; wins ``W`` and losses ``L`` are the sums of the positive and
    negative parts of ``z`` (for 0/1 scores: the counts of items only the candidate, or only the
    incumbent, solved; ties say nothing about the direction and are ignored). The evidence is
    Wald's log likelihood ratio for "the candidate wins a share ``theta`` of the disagreements"
    against "a fair coin":

        LLR = W * log(2 * theta) + L * log(2 * (1 - theta))

    with boundaries ``A = log((1 - beta) / alpha)`` and ``B = log(beta / (1 - alpha))``. By
    default ``theta = 0.5 + edge / sqrt(n)`` for a split of ``n`` items (0.59 at n = 50), an
    edge the split can resolve: the sign test's standard error on the share of disagreements
    shrinks like ``1 / sqrt(n)``, so the rule asks for comparable evidence at every split size
    rather than deciding on the same handful of disagreements at n = 20 and n = 200.

    1. Race: after each chunk, ``LLR <= B`` rejects at once (a clearly worse candidate stops
       early; ``items_used`` records where). With ``stop_when_won``, ``LLR >= A`` accepts early;
       by default acceptance waits for the whole split, because an early lead on a few items is
       where lucky candidates come from.
    2. End of split: ``LLR >= A`` accepts, ``LLR <= B`` rejects.
    3. Resolve, only if still undecided: for up to ``rounds`` rounds, draw one more sample of
       both sides on the items whose first samples disagree (``|z| >= disagree``), ``chunk``
       items at a time; ``z`` becomes the difference of per-item means, which shrinks the
       disagreements that were noise and keeps the real ones. After each chunk the same two
       boundaries apply. Items that agree are not re-sampled: there the calls would buy least.
    4. Truncation: still undecided after the last round, accept iff ``LLR > 0``.

    **Error control.** For 0/1 outcomes without re-sampling, ``exp(LLR)`` is a martingale over
    the disagreements when the candidate is no better than the incumbent (each disagreement a
    fair coin) and a supermartingale when it is worse, so by Ville's inequality such a candidate
    ever reaches ``A`` with probability at most ``exp(-A) = alpha / (1 - beta)`` (0.55 with the
    defaults), however many looks are taken; by Wald's approximation a candidate that truly wins
    a share ``theta`` of the disagreements falls to ``B`` with probability at most about
    ``beta / (1 - alpha)`` (0.64). Re-sampling, soft scores and the truncation
    step make these bounds approximate. The per-decision bounds are loose on purpose: each
    comparison is against the incumbent's stored first-sample outcomes, which were selected
    when it won, and that acts as a margin of its own; and at 20-200 items a tight test rejects
    most real improvements. The defaults were chosen on the whole-run outcomes a user ships
    (``bench/gate_sim.py``, docs/gate.md): measured over 2,000 simulated runs in the reference
    scenario at n = 50, a harmful candidate is accepted 0.8% of the time (``strict``: 2.3%), a
    neutral one 8.5% (13%), a helpful one 45% (50%), and the shipped skill is worse than the
    start in 4.1% of runs (10.2%).
    """

    name: ClassVar[str] = "paired"
    chunk: int = 10
    theta: float | None = None
    alpha: float = 0.3
    beta: float = 0.45
    rounds: int = 4
    disagree: float = 0.5
    stop_when_won: bool = False
    edge: float = 0.66

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError("chunk must be at least 1")
        if self.theta is not None and not 0.5 < self.theta < 1:
            raise ValueError("theta must be in (0.5, 1)")
        if not 0 < self.edge <= 1:
            raise ValueError("edge must be in (0, 1]")
        if not (0 < self.alpha < 1 and 0 < self.beta < 1 and self.alpha + self.beta < 1):
            raise ValueError("alpha and beta must be in (0, 1) with alpha + beta < 1")
        if self.rounds < 0:
            raise ValueError("rounds must be >= 0")
        if not 0 < self.disagree <= 1:
            raise ValueError("disagree must be in (0, 1]")

    @property
    def upper(self) -> float:
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        return math.log(self.beta / (1 - self.alpha))

    def share(self, n_items: int) -> float:
        """The alternative's share of disagreements won: ``theta``, or ``0.5 + edge / sqrt(n)``.

        The sign test's standard error on that share shrinks like ``1 / sqrt(n)``, so scaling
        the alternative this way asks for the same strength of evidence at every split size.
        """
        if self.theta is not None:
            return self.theta
        return min(0.9, 0.5 + self.edge / math.sqrt(max(1, n_items)))

    @staticmethod
    def llr(wins: float, losses: float, theta: float) -> float:
        return wins * math.log(2 * theta) + losses * math.log(2 * (1 - theta))

    async def decide(self, candidate: object, incumbent: object, items: Sequence[str],
                     evaluate: Evaluate) -> Decision:
        if candidate is incumbent:
            return _identical(self.name)
        ledger = _Ledger(evaluate, candidate, incumbent)
        pairs = _Pairs()
        order = list(dict.fromkeys(items))
        upper, lower = self.upper, self.lower
        theta = self.share(len(order))
        wins = losses = 0.0
        looks: list[list[float]] = []
        verdict: bool | None = None
        phase = "race"
        for chunk in _chunks(order, self.chunk):
            cand, inc = await ledger.fetch_both(chunk, 0)
            for t in chunk:
                d = pairs.add_first(t, cand[t], inc[t])
                if d is not None:
                    wins += max(d, 0.0)
                    losses += max(-d, 0.0)
            llr = self.llr(wins, losses, theta)
            looks.append([ledger.candidate_items, round(llr, 4)])
            more = ledger.candidate_items < len(order)
            if llr <= lower or (llr >= upper and (self.stop_when_won or not more)):
                verdict = llr >= upper
                break
        stopped = ledger.candidate_items < len(order)
        resampled = 0
        rounds_used = 0
        if verdict is None:
            phase = "resolve"
            disputed = [t for t in pairs.cand
                        if abs(pairs.cand[t][0] - pairs.inc[t][0]) >= self.disagree]
            for sample in range(1, self.rounds + 1 if disputed else 1):
                rounds_used = sample
                for chunk in _chunks(disputed, self.chunk):
                    cand, inc = await ledger.fetch_both(chunk, sample)
                    for t in chunk:
                        pairs.add_resample(t, cand[t], inc[t])
                    resampled += len(chunk)
                    wins, losses = _wins_losses(pairs.resolved_diffs())
                    llr = self.llr(wins, losses, theta)
                    looks.append([ledger.candidate_items, round(llr, 4)])
                    if llr <= lower or llr >= upper:
                        verdict = llr >= upper
                        break
                if verdict is not None:
                    break
        llr = self.llr(wins, losses, theta)
        if verdict is None:
            phase = "truncation"
            verdict = llr > 0
        evidence = {
            "wins": round(wins, 6), "losses": round(losses, 6), "llr": round(llr, 6),
            "theta": round(theta, 6),
            "upper": round(upper, 6), "lower": round(lower, 6), "phase": phase,
            "looks": looks, "rounds_used": rounds_used, "resampled_items": resampled,
            "failed_resamples": pairs.failed_resamples,
        }
        if pairs.compared == 0:
            reason = f"no item could be compared ({len(pairs.excluded)} excluded)"
        else:
            where = {"race": "stopped early at" if stopped else "after",
                     "resolve": "after re-sampling disagreements on",
                     "truncation": "undecided, by the sign of the LLR, after"}[phase]
            verb = "accepted" if verdict else "rejected"
            reason = (f"{_versus(pairs)}: {verb} {where} {ledger.candidate_items} items "
                      f"(wins {wins:g}, losses {losses:g}, LLR {llr:.2f} in [{lower:.2f}, "
                      f"{upper:.2f}])")
        return _decision(self.name, verdict, pairs, ledger, stopped_early=stopped,
                         reason=reason, evidence=evidence)


def _wins_losses(diffs: dict[str, float]) -> tuple[float, float]:
    wins = math.fsum(d for d in diffs.values() if d > 0)
    losses = math.fsum(-d for d in diffs.values() if d < 0)
    return wins, losses


@dataclass(frozen=True)
class SignTestGate:
    """One-sided exact sign test on the whole split: accept iff P(Bin(m, 1/2) >= wins) <= alpha.

    ``m`` counts the items whose first samples differ in either direction. This is the classical
    significance test; it rarely accepts a wrong candidate, and at 20-200 items it also rejects
    most real improvements, which is why it is not the default.
    """

    name: ClassVar[str] = "sign_test"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")

    async def decide(self, candidate: object, incumbent: object, items: Sequence[str],
                     evaluate: Evaluate) -> Decision:
        if candidate is incumbent:
            return _identical(self.name)
        ledger = _Ledger(evaluate, candidate, incumbent)
        pairs = _Pairs()
        cand, inc = await ledger.fetch_both(items, 0)
        wins = losses = 0
        for t in dict.fromkeys(items):
            d = pairs.add_first(t, cand[t], inc[t])
            if d is not None:
                wins += d > 0
                losses += d < 0
        p = _binomial_tail(wins + losses, wins)
        accepted = wins > losses and p <= self.alpha
        if pairs.compared == 0:
            reason = f"no item could be compared ({len(pairs.excluded)} excluded)"
        else:
            reason = (f"{_versus(pairs)}: {wins} wins, {losses} losses, one-sided p={p:.3g} "
                      f"{'<=' if accepted else 'not <='} {self.alpha}")
        return _decision(self.name, accepted, pairs, ledger, stopped_early=False, reason=reason,
                         evidence={"wins": wins, "losses": losses, "p_value": p})


def _binomial_tail(m: int, k: int) -> float:
    """P(Bin(m, 1/2) >= k)."""
    if m == 0:
        return 1.0
    return math.fsum(math.comb(m, j) for j in range(k, m + 1)) / 2**m


# --------------------------------------------------------------------------------------------
# Configuration.

_RULES: dict[str, type] = {
    g.name: g for g in (StrictGate, StrictRacingGate, PairedGate, SignTestGate)
}
GATE_NAMES: tuple[str, ...] = tuple(_RULES)
DEFAULT_GATE: str = "paired"
"""Chosen from ``bench/gate_sim.py``: see docs/gate.md for the table."""


def make_gate(name: str, **options: Any) -> Gate:
    """Build a gate by name; unknown names and options are errors that list the valid ones."""
    if name not in _RULES:
        raise ValueError(f"unknown gate {name!r}; valid gates: {', '.join(GATE_NAMES)}")
    cls = _RULES[name]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for gate {name!r}; "
                         f"valid options: {', '.join(valid) or 'none'}")
    return cls(**options)
