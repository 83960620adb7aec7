"""Loading a user's `module:function` (a scorer, an agent tool) or `module:Class` (an
environment) with one error wording."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load_callable(spec: str, what: str, error: type[Exception] = ValueError, *,
                  kind: str = "function") -> Callable[..., Any]:
    """Import `module:function` (or `module:Class`, `kind="Class"`); raise `error` with a
    one-line message naming `what` (for example "scorer" or "tool") and what went wrong, so
    the CLI can print it as is."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise error(f"{what} {spec!r}: expected 'module:{kind}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{what} {spec!r}: cannot import module {module_name!r} ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while it was imported
        raise error(f"{what} {spec!r}: importing {module_name!r} raised "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise error(f"{what} {spec!r}: {module_name} has no {kind.lower()} {attr!r}")
    return fn
