"""All built-in suites by name.

`SUITES()` builds fresh Suite objects on every call instead of keeping a module-level dict, so
nothing a caller does to one lookup can leak into the next.
"""

from __future__ import annotations

from collections.abc import Callable

from skilltrain.suites import gym, house, spreadsheet
from skilltrain.suites.base import Suite

_SOURCES: tuple[Callable[[], list[Suite]], ...] = (house.suites, gym.suites,
                                                   spreadsheet.suites)


def SUITES() -> dict[str, Suite]:  # noqa: N802 - the name base.py calls
    """Every built-in suite, keyed by name, in listing order (house suites first)."""
    found: dict[str, Suite] = {}
    for source in _SOURCES:
        for suite in source():
            if suite.name in found:
                raise RuntimeError(f"two built-in suites are named {suite.name!r}")
            found[suite.name] = suite
    return found
