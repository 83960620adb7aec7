"""The Suite record and its error; the suites by name are in `registry`.

Nothing here imports a suite module, so each suite module can import this one without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skilltrain.data import Splits


class SuiteError(ValueError):
    """An unknown suite, or one whose optional dependency is missing."""


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    skill: str  # the starting skill, Markdown
    scorer: Any  # a scorer spec for make_scorer (name, dict, or Scorer object)
    build: Callable[[int], Splits] = field(repr=False)  # seed -> deterministic splits
    harness: str = "chat"
    needs: str | None = None  # the extra to install, if any

    def splits(self, seed: int = 0) -> Splits:
        return self.build(seed)
