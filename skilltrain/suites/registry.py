"""All built-in suites by name, and the lookups the CLI and run setup use.

`builtin_suites()` builds fresh Suite objects on every call instead of keeping a module-level
dict, so nothing a caller does to one lookup can leak into the next. Building one only defines
its tasks' generator: optional packages (reasoning-gym, openpyxl) load when tasks are drawn.
"""

from __future__ import annotations

from collections.abc import Callable

from skilltrain.suites import gym, house, spreadsheet
from skilltrain.suites.base import Suite, SuiteError

_SOURCES: tuple[Callable[[], list[Suite]], ...] = (house.suites, gym.suites,
                                                   spreadsheet.suites)


def builtin_suites() -> dict[str, Suite]:
    """Every built-in suite, keyed by name, in listing order (house suites first)."""
    found: dict[str, Suite] = {}
    for source in _SOURCES:
        for suite in source():
            if suite.name in found:
                raise RuntimeError(f"two built-in suites are named {suite.name!r}")
            found[suite.name] = suite
    return found


def list_suites() -> list[Suite]:
    return list(builtin_suites().values())


def get_suite(name: str) -> Suite:
    suites = builtin_suites()
    if name not in suites:
        raise SuiteError(f"suite {name!r}: unknown; available: {', '.join(sorted(suites))}")
    return suites[name]
