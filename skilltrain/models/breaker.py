"""A circuit breaker per role client: an endpoint that cannot be reached ends the run fast.

Without it, a port with nothing listening cost every task its full round of retries and the
run ended "successfully" with nothing scored (69 s for a small run, 6 minutes for 400 tasks).
Two thresholds, because the same failure means different things at different times:

- before the endpoint has answered once, a few connection-level failures in a row (refused,
  DNS, timeout) mean a wrong URL, a server not started, or a dead network: waiting longer
  cannot help, so the whole run or evaluation stops with one line that names the role, the
  endpoint and the last error;
- after it has answered, failures are transient until proven otherwise: they stay counted,
  retried infrastructure failures, and only a long outage (many failures in a row *and* for a
  while) stops the run, which is then checkpointed and can be resumed.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from skilltrain.models.base import InfrastructureFailure, ModelError

# Failures that mean no usable connection to the endpoint; any other failure is a reply.
CONNECTION_KINDS = frozenset({"connection", "timeout"})


class EndpointDown(ModelError, InfrastructureFailure):
    """The breaker opened: this role's endpoint is unreachable, so the run cannot go on.

    Its kind is "fatal" so that every stage that counts a failed call and moves on (harnesses,
    analysts, the judge) lets it through instead, as it does for a bad API key. `answered`
    tells a dead-from-the-start endpoint (fail the run) from an outage mid-run (stop cleanly).
    `note` is added by whoever knows more, e.g. the trainer's resume hint.
    """

    def __init__(self, role: str, endpoint: str, reason: str, attempts: int, *,
                 answered: bool, outage_s: float = 0.0):
        self.role, self.endpoint, self.reason = role, endpoint, reason
        self.attempts, self.answered, self.outage_s = attempts, answered, outage_s
        self.note = ""
        if answered:
            message = (f"{role} endpoint {endpoint} stopped answering ({reason}; "
                       f"{attempts} failed attempts in a row over {outage_s:.0f}s)")
        else:
            message = f"{role} endpoint {endpoint} unreachable ({reason}, {attempts} attempts)"
        super().__init__("fatal", message)

    def __str__(self) -> str:
        return f"{self.message}; {self.note}" if self.note else self.message

    def again(self) -> EndpointDown:
        """A fresh copy for the next caller, so concurrent calls do not share a traceback."""
        copy = EndpointDown(self.role, self.endpoint, self.reason, self.attempts,
                            answered=self.answered, outage_s=self.outage_s)
        copy.note = self.note
        return copy


def endpoint_of(model: Any) -> str:
    """What to call the endpoint in a message: its base URL without credentials or query (a
    key can sit in either), else the model's name (in-process models have no URL)."""
    url = getattr(model, "base_url", None)
    if not url:
        return str(getattr(model, "name", "model"))
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class Breaker:
    """Counts connection-level failures in a row for one role; opens on the thresholds above.

    `check()` goes before every attempt (an open breaker sends nothing), `success()` and
    `failure()` after it. Once open it stays open for the client's life: from the start, every
    later call fails with the same EndpointDown; mid-run, the run is already stopping, so later
    calls (the end-of-run evaluation, calls still in flight) fail at once as counted
    "unreachable" infrastructure failures rather than each waiting out its retries.
    """

    def __init__(self, role: str, endpoint: str):
        self.role = role
        self.endpoint = endpoint
        self.answered = False
        self.in_a_row = 0
        self.since: float | None = None  # when the current run of failures began
        self.opened: EndpointDown | None = None

    def check(self) -> None:
        if self.opened is None:
            return
        if not self.opened.answered:
            raise self.opened.again()
        raise ModelError("unreachable", f"not sent: {self.opened.message}")

    def success(self) -> None:
        self.answered = True
        self.in_a_row, self.since = 0, None

    def failure(self, exc: ModelError, *, open_after: int, stop_after: int,
                stop_after_s: float) -> None:
        """Record a failed attempt; raises EndpointDown when this failure opens the breaker."""
        if exc.kind not in CONNECTION_KINDS:
            self.in_a_row, self.since = 0, None  # the endpoint replied: it is reachable
            return
        now = time.monotonic()
        self.in_a_row += 1
        self.since = now if self.since is None else self.since
        if self.opened is not None:
            return
        outage = now - self.since
        if self.answered:
            if self.in_a_row < stop_after or outage < stop_after_s:
                return
        elif self.in_a_row < open_after:
            return
        self.opened = EndpointDown(self.role, self.endpoint, _reason(exc), self.in_a_row,
                                   answered=self.answered, outage_s=outage)
        raise self.opened


def _reason(exc: ModelError) -> str:
    """The last error on one line: OpenAIModel words connection-level failures in a few words
    ("connection refused", "no reply within the 120s deadline"), so they are shown as they
    are."""
    return " ".join(exc.message.split())[:200] or exc.kind
