"""Reading the rate-limit headers providers send with every reply (and with a 429): how much of
a limit is left and when it is full again. Kept apart from the limiter so that every backend
(the OpenAI-compatible one, Anthropic's) reads them the same way."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """Seconds from a reset header: Go-style durations ("1s", "6m0s", "20ms", "1h2m3.5s") as
    OpenAI sends them, or a bare number of seconds; None when absent or unreadable."""
    if text is None:
        return None
    text = str(text).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _SCALE[u] for n, u in parts)


def _reset_seconds(value: str | None) -> float | None:
    """A reset header as seconds from now: a duration, or an RFC 3339 time (Anthropic's)."""
    seconds = parse_duration(value)
    if seconds is not None or value is None:
        return seconds
    try:
        at = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return max(0.0, (at - datetime.now(timezone.utc)).total_seconds())


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class QuotaReading:
    """One limit as a reply's headers state it: how much is left, when it is full again, and
    the limit itself when sent."""

    remaining: float
    reset_s: float
    limit: float | None = None


def read_quotas(headers: Any) -> dict[str, QuotaReading]:
    """The request and token quotas a reply's headers state, by "requests" / "tokens":
    OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` or Anthropic's
    `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`. A quota whose remaining
    count or reset is missing or unreadable is left out (nothing is guessed)."""
    found: dict[str, QuotaReading] = {}
    if headers is None:
        return found
    for kind in ("requests", "tokens"):
        for names in ((f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}",
                       f"x-ratelimit-limit-{kind}"),
                      (f"anthropic-ratelimit-{kind}-remaining",
                       f"anthropic-ratelimit-{kind}-reset", f"anthropic-ratelimit-{kind}-limit")):
            try:
                left = _number(headers.get(names[0]))  # absent: one lookup, the common case
                if left is None:
                    continue
                seconds = _reset_seconds(headers.get(names[1]))
                limit = _number(headers.get(names[2]))
            except AttributeError:
                return found
            if seconds is not None:
                found[kind] = QuotaReading(max(0.0, left), seconds, limit)
                break
    return found
