"""A role's provider limits: requests and tokens per minute, what the provider's rate-limit
headers say is left, and a concurrency that backs off on 429s and recovers.

Paid endpoints cap requests and tokens per minute. Without a limiter, going over shows only as
429s: each a wasted round trip and a retry, and at a high concurrency a wave of them at once.
A `RateLimiter` belongs to one model instance (one role): there is no state at module level,
so two runs in one process, or two roles on one key, never share one.

Four things decide when a call may go, all checked just before it is sent:

- the configured `rpm` / `tpm` (RateLimits), kept as sliding windows (WindowBudget): at most
  `rpm` requests and `tpm` tokens are sent within any `window_s` seconds. A classic refilling
  token bucket of capacity L refilled at L per minute lets 2L through in some minute (a full
  bucket spent at once, then the refill), which is exactly what a provider counting per minute
  refuses; the window never does. Tokens are estimated before the call (estimate_tokens) and
  corrected by the reply's usage.
- the provider's own headers (ServerQuota): `x-ratelimit-remaining-requests / -tokens` with
  `x-ratelimit-reset-*` (OpenAI's "1s" / "6m0s" / "20ms" durations) or Anthropic's
  `anthropic-ratelimit-*` (RFC 3339 reset times), counted down with each call sent.
- a 429's `retry-after`, which pauses the whole role, not only the call that got it.
- the adaptive concurrency (AdaptiveConcurrency): halved on a 429, +1 per `recover_after`
  successes, between 1 and the configured concurrency.

The clock is injected (`Clock`), so the windows are tested without waiting a minute.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from skilltrain.models.base import Completion, ModelError
from skilltrain.models.concurrency import AdaptiveConcurrency
from skilltrain.models.ratelimit_headers import QuotaReading, read_quotas

# Characters per token for the before-the-call estimate: English prose and JSON average about
# four with OpenAI's and Anthropic's tokenizers. The estimate only has to be cheap and roughly
# right: each reply's real usage replaces it in the window.
CHARS_PER_TOKEN = 4


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: monotonic seconds, asyncio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class RateLimits:
    """`rpm` requests and `tpm` tokens per `window_s` seconds (None: unlimited).

    `margin_s` is added to the window a sent request occupies: our clock and the provider's
    count the same request a few milliseconds apart (network, queueing), and a request it sees
    a moment later than we do would otherwise be one too many in its window. `window_s` and
    `margin_s` are for tests (a short window); a config sets only rpm and tpm, per minute.
    """

    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0
    margin_s: float = 1.0
    recover_after: int = 10  # successes in a row that raise the concurrency by one

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (None: unlimited), got {value}")
        if self.window_s <= 0 or self.margin_s < 0 or self.recover_after < 1:
            raise ValueError("window_s must be > 0, margin_s >= 0, recover_after >= 1")


def estimate_tokens(request: dict[str, Any]) -> int:
    """Tokens a request will count for, before it is sent: its text (messages, tools, the
    response schema) at CHARS_PER_TOKEN characters a token, plus `max_tokens`, which providers
    count in full when they admit a request (OpenAI does) since the reply's length is unknown."""
    chars = 0
    for message in request.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # content parts: count the text ones
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
        chars += 16  # role and framing
    for key in ("tools", "response_format"):
        if request.get(key):
            chars += len(repr(request[key]))
    return chars // CHARS_PER_TOKEN + int(request.get("max_tokens") or 0)


class _Spent:
    __slots__ = ("at", "amount", "live")

    def __init__(self, at: float, amount: float):
        self.at, self.amount, self.live = at, amount, True


class WindowBudget:
    """At most `capacity` units within any `span` seconds: a ledger of what was spent when.
    An amount can be corrected after the fact (a reply's real token usage). A single amount
    larger than the whole capacity waits until the ledger is empty, then goes alone: refusing
    it forever would stall the run on a request the provider may still take."""

    def __init__(self, capacity: float, span: float):
        self.capacity, self.span = capacity, span
        self._entries: deque[_Spent] = deque()
        self.total = 0.0

    def _prune(self, now: float) -> None:
        entries = self._entries
        while entries and entries[0].at + self.span <= now:
            gone = entries.popleft()
            gone.live = False
            self.total -= gone.amount
        if not entries:
            self.total = 0.0  # no drift from the corrections

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (0: now)."""
        self._prune(now)
        if not self._entries or self.total + amount <= self.capacity:
            return 0.0
        if amount >= self.capacity:
            return self._entries[-1].at + self.span - now
        need = self.total + amount - self.capacity
        for entry in self._entries:
            need -= entry.amount
            if need <= 0:
                return entry.at + self.span - now
        return self._entries[-1].at + self.span - now  # unreachable: the totals agree

    def spend(self, amount: float, now: float) -> _Spent:
        entry = _Spent(now, amount)
        self._entries.append(entry)
        self.total += amount
        return entry

    def correct(self, entry: _Spent, amount: float) -> None:
        if entry.live:
            self.total += amount - entry.amount
        entry.amount = amount


class ServerQuota:
    """What the provider last said is left of one limit, counted down with each call sent.

    With the limit known, the quota refills linearly until full at the reset time (OpenAI's
    limits replenish continuously; "reset" is when the limit is back to full), so a call
    short of a few tokens waits for those tokens, not for the whole reset. Without it, what is
    left stays until the reset, after which the reading is stale and constrains nothing."""

    def __init__(self) -> None:
        self.level: float | None = None
        self.at = 0.0
        self.rate = 0.0  # units per second coming back
        self.cap: float | None = None
        self.until = 0.0  # the reset: after it, a reading without a limit is stale

    def update(self, reading: QuotaReading, now: float) -> None:
        self.level, self.at, self.cap = reading.remaining, now, reading.limit
        self.until = now + reading.reset_s
        if reading.limit is not None and reading.reset_s > 0:
            self.rate = max(0.0, reading.limit - reading.remaining) / reading.reset_s
        else:
            self.rate = 0.0

    def _available(self, now: float) -> float | None:
        if self.level is None or (self.cap is None and now >= self.until):
            return None
        level = self.level + (now - self.at) * self.rate
        return level if self.cap is None else min(self.cap, level)

    def wait_for(self, amount: float, now: float) -> float:
        available = self._available(now)
        if available is None or available >= min(amount, self.cap or amount):
            return 0.0
        if self.rate > 0:
            short = min(amount, self.cap or amount) - available
            return min(short / self.rate, max(0.0, self.until - now)) or 0.001
        return max(0.0, self.until - now)

    def spend(self, amount: float, now: float) -> None:
        available = self._available(now)
        if available is not None:
            self.level, self.at = available - amount, now


@dataclass
class LimiterStats:
    """What the limiter did, for the summary: 429s seen, calls held back (`waits`; `wait_s`
    adds up how long each was held, so calls held together count each), concurrency cuts and
    the lowest concurrency reached."""

    rate_limited: int = 0
    waits: int = 0
    wait_s: float = 0.0
    cuts: int = 0
    lowest_concurrency: int = 0
    waits_by_reason: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rate_limited": self.rate_limited, "waits": self.waits,
                "wait_s": round(self.wait_s, 2), "concurrency_cuts": self.cuts,
                "lowest_concurrency": self.lowest_concurrency,
                "waits_by_reason": dict(self.waits_by_reason)}


@dataclass
class Ticket:
    """One admitted call: the epoch it was sent in and what it was counted as."""

    epoch: int
    tokens: int = 0
    spent_tokens: _Spent | None = None
    released: bool = False


class RateLimiter:
    """The gate one model instance's calls pass: `admit` before sending (waits as the limits
    require), `observe` with what came back, `release` always (in a `finally`).

    `on_change`, when set, is called with `status()` whenever it may have changed (a wait
    begins or ends, a 429, the concurrency moves): the live progress shows it."""

    def __init__(self, limits: RateLimits | None = None, concurrency: int = 8,
                 clock: Clock | None = None):
        self.limits = limits or RateLimits()
        self.clock = clock or SystemClock()
        self.gate = AdaptiveConcurrency(concurrency, self.limits.recover_after)
        span = self.limits.window_s + self.limits.margin_s
        lim = self.limits
        self.requests = WindowBudget(lim.rpm, span) if lim.rpm else None
        self.tokens = WindowBudget(lim.tpm, span) if lim.tpm else None
        self.quota = {"requests": ServerQuota(), "tokens": ServerQuota()}
        self.paused_until = 0.0
        self.stats = LimiterStats(lowest_concurrency=concurrency)
        self.waiting: tuple[float, str] | None = None  # (seconds, reason) of the wait under way
        self.on_change: Callable[[str | None], None] | None = None
        self._lock = asyncio.Lock()
        self._watched = False  # a server quota or pause has been seen: check on every call

    # -- before the call -------------------------------------------------------------------
    async def admit(self, request: dict[str, Any]) -> Ticket:
        epoch = await self.gate.acquire()
        try:
            return await self._rate(request, epoch)
        except BaseException:
            self.gate.release()
            raise

    async def _rate(self, request: dict[str, Any], epoch: int) -> Ticket:
        if self.requests is None and self.tokens is None and not self._watched:
            return Ticket(epoch)  # nothing to wait for: the common case costs nothing
        amount = estimate_tokens(request)
        entered = self.clock.now()
        # Held back: the lock is only ever held across a wait, so finding it taken means
        # queueing behind a call that is waiting for the limits (for the same reason).
        reason = self.waiting[1] if self._lock.locked() and self.waiting else None
        async with self._lock:  # first come, first sent
            while True:
                now = self.clock.now()
                wait, why = self._wait(amount, now)
                if wait <= 0:
                    break
                reason = reason or why
                self.waiting = (wait, why)
                self._changed()
                await self.clock.sleep(wait)
            if reason is not None:
                self.stats.waits += 1
                self.stats.wait_s += now - entered
                self.stats.waits_by_reason[reason] = self.stats.waits_by_reason.get(reason, 0) + 1
            if self.waiting is not None:
                self.waiting = None
                self._changed()
            ticket = Ticket(epoch, amount)
            if self.requests is not None:
                self.requests.spend(1, now)
            if self.tokens is not None:
                ticket.spent_tokens = self.tokens.spend(amount, now)
            self.quota["requests"].spend(1, now)
            self.quota["tokens"].spend(amount, now)
            return ticket

    def _wait(self, amount: int, now: float) -> tuple[float, str]:
        waits = [(self.paused_until - now, "retry-after")]
        if self.requests is not None:
            waits.append((self.requests.wait_for(1, now), "rpm"))
        if self.tokens is not None:
            waits.append((self.tokens.wait_for(amount, now), "tpm"))
        waits.append((self.quota["requests"].wait_for(1, now), "server requests"))
        waits.append((self.quota["tokens"].wait_for(amount, now), "server tokens"))
        return max(waits)

    # -- after the call --------------------------------------------------------------------
    def observe(self, ticket: Ticket, *, headers: Any = None, tokens: int | None = None,
                outcome: str = "ok", retry_after: float | None = None) -> None:
        """What came back: the headers (of any reply, a 429's included), and the outcome:
        "ok" with the reply's real token usage, "rate_limited" (a 429) with the server's
        `retry_after`, which holds back the whole role, or "failed" (anything else: it
        neither raises nor cuts the concurrency)."""
        now = self.clock.now()
        for kind, reading in read_quotas(headers).items():
            self.quota[kind].update(reading, now)
            self._watched = True
        if outcome == "rate_limited":
            self.stats.rate_limited += 1
            if self.gate.refused(ticket.epoch):
                self.stats.cuts += 1
                self.stats.lowest_concurrency = self.gate.lowest
            if retry_after is not None and retry_after > 0:
                self.paused_until = max(self.paused_until, now + retry_after)
                self._watched = True
            self._changed()
        elif outcome == "ok":
            if tokens and ticket.spent_tokens is not None and self.tokens is not None:
                self.tokens.correct(ticket.spent_tokens, tokens)
            if self.gate.succeeded():
                self._changed()

    def release(self, ticket: Ticket) -> None:
        if not ticket.released:
            ticket.released = True
            self.gate.release()

    # -- what the user sees ----------------------------------------------------------------
    def status(self) -> str | None:
        """One line while the role is being held back ("429 x3, concurrency 16->4, waiting
        2.0 s for rpm"); None when it is not."""
        parts = []
        if self.stats.rate_limited:
            parts.append(f"429 x{self.stats.rate_limited}")
        if self.gate.limit < self.gate.maximum:
            parts.append(f"concurrency {self.gate.maximum}->{self.gate.limit}")
        if self.waiting is not None:
            parts.append(f"waiting {self.waiting[0]:.1f} s for {self.waiting[1]}")
        if not parts or parts == [f"429 x{self.stats.rate_limited}"]:
            return None  # recovered and not waiting: old 429s alone are not throttling
        return ", ".join(parts)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.status())


class Refused(Exception):
    """An error reply (an HTTP error status, a body that is not the protocol's) raised by the
    `send` of `limited_call` with the headers it came with: the limiter reads them (a 429's
    quotas and its wait) before the ModelError it carries goes on to the retry loop."""

    def __init__(self, error: ModelError, headers: Any = None):
        super().__init__(str(error))
        self.error, self.headers = error, headers


async def limited_call(limiter: RateLimiter, request: dict[str, Any],
                       send: Callable[[], Awaitable[tuple[Any, Any]]],
                       read: Callable[[Any], Completion]) -> Completion:
    """One call through `limiter`, the same way for every HTTP backend (OpenAI's, Anthropic's),
    so none can forget a step: admitted before `send` (the reply and its headers, or Refused /
    ModelError), released however it ends, and told what came back (a 429 with its wait, a
    reply `read` cannot use as a failure, else the reply's real token usage)."""
    ticket = await limiter.admit(request)
    try:
        reply, headers = await send()
    except Refused as refused:
        error = refused.error
        limiter.observe(ticket, headers=refused.headers, retry_after=error.retry_after,
                        outcome="rate_limited" if error.kind == "rate_limit" else "failed")
        raise error from None
    finally:
        limiter.release(ticket)
    try:
        completion = read(reply)
    except ModelError:
        limiter.observe(ticket, headers=headers, outcome="failed")
        raise
    limiter.observe(ticket, headers=headers,
                    tokens=completion.usage.prompt_tokens + completion.usage.completion_tokens)
    return completion
