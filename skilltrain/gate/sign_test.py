"""``sign_test``: the textbook one-sided exact sign test, kept as a conservative option and as
the bench's baseline for what classical significance costs in accepted improvements."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .decision import Decision
from .ledger import Ledger, Pairs
from .rule import Rule, decision, nothing_compared, versus


@dataclass(frozen=True)
class SignTestGate(Rule):
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

    async def compare(self, ledger: Ledger, pairs: Pairs, items: Sequence[str]) -> Decision:
        cand, inc = await ledger.fetch_both(items, 0)
        wins = losses = 0
        for t in dict.fromkeys(items):
            d = pairs.add_first(t, cand[t], inc[t])
            if d is not None:
                wins += d > 0
                losses += d < 0
        p = binomial_tail(wins + losses, wins)
        accepted = wins > losses and p <= self.alpha
        if pairs.compared == 0:
            reason = nothing_compared(pairs)
        else:
            reason = (f"{versus(pairs)}: {wins} wins, {losses} losses, one-sided p={p:.3g} "
                      f"{'<=' if accepted else 'not <='} {self.alpha}")
        return decision(self.name, accepted, pairs, ledger, stopped_early=False, reason=reason,
                        evidence={"wins": wins, "losses": losses, "p_value": p})


def binomial_tail(m: int, k: int) -> float:
    """P(Bin(m, 1/2) >= k), exactly: the sign test's p-value for ``k`` wins of ``m``."""
    if m == 0:
        return 1.0
    return math.fsum(math.comb(m, j) for j in range(k, m + 1)) / 2**m
