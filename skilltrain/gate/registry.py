"""The gates by name: how a configuration string and its options become a rule.

One table, read-only after import, so ``config`` can validate a gate name and its options
before a run starts instead of failing at the first decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .decision import Gate
from .paired import PairedGate
from .sign_test import SignTestGate
from .strict import StrictGate, StrictRacingGate

_RULES: Mapping[str, type] = MappingProxyType(
    {g.name: g for g in (StrictGate, StrictRacingGate, PairedGate, SignTestGate)}
)
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
