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

Layout: ``decision`` (the types callers see), ``ledger`` (one decision's requests and paired
outcomes), ``rule`` (the base every rule shares and its decision and reason builders), one module
per rule family (``strict``, ``paired``, ``sign_test``) and ``registry`` (rules by name).
Everything public is re-exported here, so callers import from ``skilltrain.gate``.
"""

from .decision import Decision, Evaluate, Gate, Outcome
from .paired import PairedGate
from .registry import DEFAULT_GATE, GATE_NAMES, make_gate
from .sign_test import SignTestGate
from .strict import StrictGate, StrictRacingGate

__all__ = [
    "DEFAULT_GATE",
    "GATE_NAMES",
    "Decision",
    "Evaluate",
    "Gate",
    "Outcome",
    "PairedGate",
    "SignTestGate",
    "StrictGate",
    "StrictRacingGate",
    "make_gate",
]
