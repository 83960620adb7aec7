"""How every `skilltrain` command ends on an error: one line on stderr and an exit code a
script can act on (2: fix the input; 1: the infrastructure failed, try again later).

Kept apart from cli.py so that command modules registered there (cli_evidence) end the same
way without importing cli.py, which imports them.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console

from skilltrain.config import ConfigError


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a command reports as one line instead of a traceback."""
    from skilltrain.data import DataError
    from skilltrain.models.base import InfrastructureFailure, ModelError
    from skilltrain.models.client import ReplayMiss
    from skilltrain.run_files import RunFileError
    from skilltrain.scoring import ScorerError
    from skilltrain.skill import SkillError
    from skilltrain.suites.base import SuiteError

    errors: tuple[type[BaseException], ...] = (
        ConfigError, DataError, ScorerError, SkillError, SuiteError, ReplayMiss, ModelError,
        FileNotFoundError, InfrastructureFailure, RunFileError)
    try:
        from skilltrain.local.assets import LocalModelError
        from skilltrain.local.server import LocalServerError

        errors += (LocalModelError, LocalServerError)
    except ImportError:
        pass
    return errors


def fail(exc: BaseException) -> NoReturn:
    """One line on stderr; exit 1 when the infrastructure failed (unreachable endpoint,
    nothing scored), 2 for bad input."""
    from rich.markup import escape

    from skilltrain.models.base import InfrastructureFailure

    text = " ".join(str(exc).splitlines())  # a server's error body may span lines
    Console(stderr=True, highlight=False).print(f"[red]error:[/] {escape(text)}",
                                                markup=True, soft_wrap=True)
    raise typer.Exit(1 if isinstance(exc, InfrastructureFailure) else 2)


def set_overrides(sets: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` as dotted overrides; VALUE is YAML, so numbers and lists keep types."""
    import yaml

    overrides: dict[str, Any] = {}
    for spec in sets:
        key, eq, value = (part.strip() for part in spec.partition("="))
        try:
            overrides[key] = yaml.safe_load(value) if eq and key else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {spec!r}: VALUE is not valid YAML") from None
        if overrides[key] is None:  # merge_overrides reads None as "not given"
            raise ConfigError(f"--set {spec!r}: expected KEY=VALUE, VALUE not null")
    return overrides
