"""Built-in task suites: each ships its tasks (generated, deterministic), a starting skill and a
scorer, so a run needs nothing but a suite name."""

from __future__ import annotations

from skilltrain.suites.base import Suite, SuiteError
from skilltrain.suites.registry import builtin_suites, get_suite, list_suites

__all__ = ["Suite", "SuiteError", "builtin_suites", "get_suite", "list_suites"]
