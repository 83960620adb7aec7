"""``paired``, the default rule: a sequential test on the items where the two skills disagree.

The rule and its statistics (the likelihood ratio, its boundaries, the split-size-dependent
alternative) live together because the error-control argument in ``PairedGate``'s docstring
covers them as one; ``bench/gate_sim.py`` measures the whole-run outcome of the defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .decision import Decision
from .ledger import Ledger, Pairs, chunks
from .rule import Rule, decision, nothing_compared, versus


@dataclass(frozen=True)
class PairedGate(Rule):
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

    async def compare(self, ledger: Ledger, pairs: Pairs, items: Sequence[str]) -> Decision:
        order = list(dict.fromkeys(items))
        upper, lower = self.upper, self.lower
        theta = self.share(len(order))
        wins = losses = 0.0
        looks: list[list[float]] = []
        verdict: bool | None = None
        phase = "race"
        for chunk in chunks(order, self.chunk):
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
                for chunk in chunks(disputed, self.chunk):
                    cand, inc = await ledger.fetch_both(chunk, sample)
                    for t in chunk:
                        pairs.add_resample(t, cand[t], inc[t])
                    resampled += len(chunk)
                    wins, losses = wins_losses(pairs.resolved_diffs())
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
            reason = nothing_compared(pairs)
        else:
            where = {"race": "stopped early at" if stopped else "after",
                     "resolve": "after re-sampling disagreements on",
                     "truncation": "undecided, by the sign of the LLR, after"}[phase]
            verb = "accepted" if verdict else "rejected"
            reason = (f"{versus(pairs)}: {verb} {where} {ledger.candidate_items} items "
                      f"(wins {wins:g}, losses {losses:g}, LLR {llr:.2f} in [{lower:.2f}, "
                      f"{upper:.2f}])")
        return decision(self.name, verdict, pairs, ledger, stopped_early=stopped,
                         reason=reason, evidence=evidence)


def wins_losses(diffs: dict[str, float]) -> tuple[float, float]:
    """Sums of the positive and of the negative per-item differences: the evidence's W and L."""
    wins = math.fsum(d for d in diffs.values() if d > 0)
    losses = math.fsum(-d for d in diffs.values() if d < 0)
    return wins, losses
