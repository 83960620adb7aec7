"""The skeleton every rule shares: the free answer for an identical candidate, a fresh ledger
per decision, and the decision record and reason texts built from what the rule gathered.

Each rule then only says which items to ask for, when to stop and what the evidence means, so
the rules cannot drift apart in how they count costs, exclusions and scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .decision import Decision, Evaluate
from .ledger import Ledger, Pairs


class Rule:
    """Base of the rules: ``decide`` (the ``Gate`` protocol) opens every decision the same way
    and hands a fresh ledger and pairs to the rule's ``compare``."""

    name: ClassVar[str]

    async def decide(self, candidate: object, incumbent: object, items: Sequence[str],
                     evaluate: Evaluate) -> Decision:
        """Should ``candidate`` replace ``incumbent``, judged on ``items`` in their order?"""
        if candidate is incumbent:
            return Decision(False, self.name, 0.0, 0.0, 0, 0, 0, False,
                            "candidate is the incumbent itself; nothing to compare", {})
        return await self.compare(Ledger(evaluate, candidate, incumbent), Pairs(), items)

    async def compare(self, ledger: Ledger, pairs: Pairs, items: Sequence[str]) -> Decision:
        """The rule itself, on a candidate that is not the incumbent."""
        raise NotImplementedError


def decision(rule: str, accepted: bool, pairs: Pairs, ledger: Ledger, *, stopped_early: bool,
             reason: str, evidence: dict[str, Any]) -> Decision:
    """The decision record, with the scores and costs read from the pairs and the ledger."""
    cand, inc = pairs.first_means()
    return Decision(
        accepted=accepted, rule=rule, candidate_score=cand, incumbent_score=inc,
        items_used=ledger.candidate_items, new_evaluations=ledger.new_evaluations,
        excluded=len(pairs.excluded), stopped_early=stopped_early, reason=reason,
        evidence=evidence,
    )


def versus(pairs: Pairs) -> str:
    """The head of every reason: both means and how many items they cover."""
    cand, inc = pairs.first_means()
    return f"candidate {cand:.3f} vs incumbent {inc:.3f} on {pairs.compared} items"


def nothing_compared(pairs: Pairs) -> str:
    """The reason when every item was excluded."""
    return f"no item could be compared ({len(pairs.excluded)} excluded)"
