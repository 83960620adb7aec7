"""The paper's rule, ``strict``, and ``strict_racing``, which reaches the same decisions cheaper.

Both live here because racing is defined by agreement with ``strict``: same compared items,
same exact sums, only fewer candidate calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from .decision import Decision
from .ledger import Ledger, Pairs, chunks
from .rule import Rule, decision, nothing_compared, versus


@dataclass(frozen=True)
class StrictGate(Rule):
    """The paper's rule: accept iff the candidate's mean is strictly greater; ties are rejected.

    Both sides are compared on the same items (an item that failed on either side is dropped from
    both). Sums are compared exactly, so ``strict_racing`` can reproduce every decision.
    """

    name: ClassVar[str] = "strict"

    async def compare(self, ledger: Ledger, pairs: Pairs, items: Sequence[str]) -> Decision:
        cand, inc = await ledger.fetch_both(items, 0)
        for t in dict.fromkeys(items):
            pairs.add_first(t, cand[t], inc[t])
        diff = pairs.exact_first_diff()
        accepted = pairs.compared > 0 and diff > 0
        if pairs.compared == 0:
            reason = nothing_compared(pairs)
        else:
            reason = f"{versus(pairs)}: {'accepted' if accepted else 'not strictly better'}"
        return decision(self.name, accepted, pairs, ledger, stopped_early=False, reason=reason,
                        evidence={"sum_difference": float(diff)})


@dataclass(frozen=True)
class StrictRacingGate(Rule):
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

    async def compare(self, ledger: Ledger, pairs: Pairs, items: Sequence[str]) -> Decision:
        order = list(dict.fromkeys(items))
        inc = await ledger.fetch("incumbent", order, 0)
        pairs.excluded.extend(t for t in order if inc[t] is None)
        todo = [t for t in order if inc[t] is not None]
        rest_upper = sum((1 - Fraction(inc[t]) for t in todo), Fraction(0))
        rest_lower = -sum((Fraction(inc[t]) for t in todo), Fraction(0))
        diff = Fraction(0)
        looks: list[int] = []
        verdict: bool | None = None
        for chunk in chunks(todo, self.chunk):
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
            reason = f"{versus(pairs)}: ahead beyond what the remaining items can undo"
        elif stopped:
            reason = f"{versus(pairs)}: cannot overtake even if it solves every remaining item"
        elif pairs.compared == 0:
            reason = nothing_compared(pairs)
        else:
            reason = f"{versus(pairs)}: {'accepted' if accepted else 'not strictly better'}"
        return decision(self.name, accepted, pairs, ledger, stopped_early=stopped, reason=reason,
                        evidence={"sum_difference": float(diff), "looks": looks})
