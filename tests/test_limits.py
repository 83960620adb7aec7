"""The rate limiter (models/limits.py): windows, the provider's headers, 429 back-off, AIMD
concurrency, with a virtual clock so a minute's window is tested in milliseconds."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import pytest

from skilltrain.models.concurrency import AdaptiveConcurrency
from skilltrain.models.limits import (
    CHARS_PER_TOKEN,
    RateLimiter,
    RateLimits,
    ServerQuota,
    WindowBudget,
    estimate_tokens,
)
from skilltrain.models.ratelimit_headers import QuotaReading, parse_duration, read_quotas


class VirtualClock:
    """Time that moves only when someone sleeps: the tasks already ready run first (at the time
    the sleep began), then the clock jumps to the sleeper's wake time. Exact for the limiter,
    whose only sleeper at a time holds its lock, with calls answered at once."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.t + seconds
        await asyncio.sleep(0)
        self.t = max(self.t, wake)


def max_in_window(times: list[float], span: float) -> int:
    """The most of `times` inside any half-open window [t, t + span)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] + span <= t:  # the limiter's own arithmetic
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# -- the window ------------------------------------------------------------------------------

def test_window_never_lets_more_than_capacity_into_any_span():
    rng = random.Random(7)
    budget = WindowBudget(5, 60.0)
    now, sent = 0.0, []
    for _ in range(200):
        now += rng.random() * 10  # arrivals at random, often faster than 5 a minute
        now += budget.wait_for(1, now)
        budget.spend(1, now)
        sent.append(now)
    assert max_in_window(sent, 60.0) == 5
    # and it is not over-cautious: the 6th request goes the moment the 1st leaves the window
    budget = WindowBudget(5, 60.0)
    for t in range(5):
        budget.spend(1, float(t))
    assert budget.wait_for(1, 5.0) == pytest.approx(55.0)
    assert budget.wait_for(1, 60.0) == 0.0


def test_a_classic_token_bucket_would_let_twice_the_limit_through():
    """Why the window: a bucket of 5 refilled at 5 a minute sends 5 at once, then one per
    12 s; 9 requests in the first minute, which a provider counting per minute refuses."""
    level, now, sent = 5.0, 0.0, []
    while now < 60:
        if level >= 1:
            level -= 1
            sent.append(now)
        now += 0.5
        level = min(5.0, level + 0.5 * 5 / 60)
    assert max_in_window(sent, 60.0) > 5


def test_token_estimates_are_corrected_by_the_reply_usage():
    budget = WindowBudget(1000, 60.0)
    entry = budget.spend(900, 0.0)  # the estimate, max_tokens included
    assert budget.wait_for(200, 1.0) == pytest.approx(59.0)
    budget.correct(entry, 150)  # what the reply said it used
    assert budget.wait_for(200, 1.0) == 0.0
    assert budget.total == 150


def test_a_request_larger_than_the_whole_limit_waits_for_an_empty_window_then_goes():
    budget = WindowBudget(100, 60.0)
    budget.spend(30, 0.0)
    budget.spend(30, 10.0)
    assert budget.wait_for(500, 20.0) == pytest.approx(50.0)  # until the last one leaves
    assert budget.wait_for(500, 70.0) == 0.0


def test_token_estimate_counts_text_tools_and_the_reply_limit():
    text = "x" * 400
    req = {"messages": [{"role": "user", "content": text}], "max_tokens": 50}
    base = estimate_tokens(req)
    assert base >= 400 // CHARS_PER_TOKEN + 50
    assert estimate_tokens({**req, "max_tokens": 500}) == base + 450
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
             "max_tokens": 50}
    assert estimate_tokens(parts) == base
    tools = {**req, "tools": [{"type": "function", "function": {"name": "f" * 400}}]}
    assert estimate_tokens(tools) > base + 90


# -- headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5s", 0.5),
    ("12", 12.0), ("2.5", 2.5), ("1m30ms", 60.03),
])
def test_reset_durations_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "5 parsecs", "1x", "s", "-"])
def test_unreadable_durations_are_none(text):
    assert parse_duration(text) is None


def test_openai_headers_are_read():
    headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
               "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
               "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "2s"}
    got = read_quotas(headers)
    assert got["requests"] == QuotaReading(499, 0.12, 500)
    assert got["tokens"] == QuotaReading(29000, 2.0, 30000)


def test_anthropic_headers_are_read_with_rfc3339_resets():
    reset = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat().replace("+00:00",
                                                                                      "Z")
    got = read_quotas({"anthropic-ratelimit-requests-limit": "50",
                       "anthropic-ratelimit-requests-remaining": "0",
                       "anthropic-ratelimit-requests-reset": reset})
    assert got["requests"].remaining == 0 and got["requests"].limit == 50
    assert 28 < got["requests"].reset_s <= 30
    assert "tokens" not in got


@pytest.mark.parametrize("headers", [
    None, {}, {"x-ratelimit-remaining-requests": "3"},  # no reset: nothing is guessed
    {"x-ratelimit-remaining-requests": "many", "x-ratelimit-reset-requests": "1s"},
    {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "later"},
    {"anthropic-ratelimit-requests-remaining": "1",
     "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00"},  # no zone: unreadable
])
def test_incomplete_or_unreadable_headers_give_no_quota(headers):
    assert read_quotas(headers) == {}


def test_server_quota_refills_until_full_at_the_reset():
    quota = ServerQuota()
    quota.update(QuotaReading(remaining=0, reset_s=60.0, limit=60), now=0.0)
    assert quota.wait_for(1, 0.0) == pytest.approx(1.0)  # one request back per second
    assert quota.wait_for(1, 1.0) == 0.0
    quota.spend(1, 1.0)
    assert quota.wait_for(1, 1.0) == pytest.approx(1.0)
    unknown = ServerQuota()  # no limit given: what is left stays until the reset
    unknown.update(QuotaReading(remaining=0, reset_s=5.0), now=0.0)
    assert unknown.wait_for(1, 1.0) == pytest.approx(4.0)
    assert unknown.wait_for(1, 5.0) == 0.0  # stale after the reset


# -- adaptive concurrency --------------------------------------------------------------------

def test_aimd_halves_once_per_burst_recovers_by_one_and_stays_in_bounds():
    gate = AdaptiveConcurrency(16, recover_after=3)
    assert gate.refused(0) and gate.limit == 8
    assert not gate.refused(0) and gate.limit == 8  # same round of calls: no second cut
    assert gate.refused(1) and gate.limit == 4
    for _ in range(3):
        gate.succeeded()
    assert gate.limit == 5
    for epoch in range(2, 12):
        gate.refused(epoch)
    assert gate.limit == 1 and gate.lowest == 1  # never below one
    for _ in range(500):
        gate.succeeded()
    assert gate.limit == 16  # never above the configured concurrency


def test_calls_in_flight_never_exceed_the_current_limit():
    async def go():
        gate = AdaptiveConcurrency(8, recover_after=1000)
        in_flight = peak_after_cut = 0
        cut = asyncio.Event()

        async def call(i: int) -> None:
            nonlocal in_flight, peak_after_cut
            epoch = await gate.acquire()
            in_flight += 1
            if cut.is_set() and epoch == gate.epoch:
                peak_after_cut = max(peak_after_cut, in_flight)
            await asyncio.sleep(0.001)
            if i == 3:
                gate.refused(epoch)
                cut.set()
            in_flight -= 1
            gate.release()

        await asyncio.gather(*(call(i) for i in range(80)))
        return gate, peak_after_cut

    gate, peak = asyncio.run(go())
    assert gate.limit == 4 and 1 <= peak <= 4 and gate.in_flight == 0


def test_a_cancelled_waiter_does_not_leak_a_slot():
    async def go():
        gate = AdaptiveConcurrency(1)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.release()
        await asyncio.wait_for(gate.acquire(), 1)  # the slot is free again
        return gate.in_flight

    assert asyncio.run(go()) == 1


# -- the limiter -----------------------------------------------------------------------------

REQ = {"messages": [{"role": "user", "content": "What is 2 plus 2?"}], "max_tokens": 8}


def run_calls(limiter: RateLimiter, clock: VirtualClock, n: int, *, tokens: int | None = None
              ) -> list[float]:
    """n concurrent calls through the limiter, each answered at once; when each was sent."""
    sent: list[float] = []

    async def call() -> None:
        ticket = await limiter.admit(REQ)
        sent.append(clock.now())
        limiter.release(ticket)
        limiter.observe(ticket, tokens=tokens)

    async def go() -> None:
        await asyncio.gather(*(call() for _ in range(n)))

    asyncio.run(go())
    return sent


def test_rpm_holds_any_window_to_the_limit_and_counts_the_waits():
    clock = VirtualClock()
    limiter = RateLimiter(RateLimits(rpm=5, margin_s=1.0), concurrency=16, clock=clock)
    sent = run_calls(limiter, clock, 17)
    assert len(sent) == 17 and max_in_window(sent, 60.0) == 5
    assert max(sent) == pytest.approx(3 * 61.0)  # windows of 60 s plus the 1 s margin
    # calls 6-10 were held 61 s, 11-15 122 s, 16-17 183 s (those queued behind count too)
    assert limiter.stats.waits == 12 and limiter.stats.waits_by_reason == {"rpm": 12}
    assert limiter.stats.wait_s == pytest.approx(5 * 61 + 5 * 122 + 2 * 183)


def test_tpm_uses_the_estimate_then_the_real_usage():
    clock = VirtualClock()
    per_call = estimate_tokens(REQ)
    limiter = RateLimiter(RateLimits(tpm=per_call * 4), concurrency=16, clock=clock)
    estimated = run_calls(limiter, clock, 8)  # usage unknown: the estimate stays
    assert max_in_window(estimated, 60.0) == 4
    clock2 = VirtualClock()
    corrected = RateLimiter(RateLimits(tpm=per_call * 4), concurrency=16, clock=clock2)
    sent = run_calls(corrected, clock2, 8, tokens=1)  # each really used 1 token
    assert max(sent) < max(estimated)


def test_a_429_pauses_the_role_for_its_retry_after_and_cuts_concurrency():
    clock = VirtualClock()
    limiter = RateLimiter(concurrency=16, clock=clock)
    seen: list[str | None] = []
    limiter.on_change = seen.append

    async def go():
        first = await limiter.admit(REQ)
        limiter.release(first)
        limiter.observe(first, outcome="rate_limited", retry_after=2.5,
                        headers={"x-ratelimit-remaining-requests": "0",
                                 "x-ratelimit-reset-requests": "1s"})
        second = await limiter.admit(REQ)
        return clock.now(), second

    sent_at, second = asyncio.run(go())
    assert sent_at == pytest.approx(2.5)  # the retry-after, not the shorter reset
    assert limiter.stats.rate_limited == 1 and limiter.stats.cuts == 1
    assert limiter.gate.limit == 8 and limiter.stats.lowest_concurrency == 8
    assert limiter.stats.waits_by_reason == {"retry-after": 1}
    assert "429 x1, concurrency 16->8, waiting 2.5 s for retry-after" in seen
    assert limiter.status() == "429 x1, concurrency 16->8"


def test_server_headers_alone_hold_calls_until_the_quota_comes_back():
    clock = VirtualClock()
    limiter = RateLimiter(concurrency=4, clock=clock)  # no rpm of ours

    async def go():
        first = await limiter.admit(REQ)
        limiter.release(first)
        limiter.observe(first, headers={"x-ratelimit-limit-requests": "10",
                                        "x-ratelimit-remaining-requests": "0",
                                        "x-ratelimit-reset-requests": "10s"})
        await limiter.admit(REQ)
        return clock.now()

    assert asyncio.run(go()) == pytest.approx(1.0)  # 10 per 10 s: one back after 1 s
    assert limiter.stats.waits_by_reason == {"server requests": 1}
    assert limiter.stats.rate_limited == 0


def test_other_failures_neither_cut_nor_raise_the_concurrency():
    limiter = RateLimiter(RateLimits(recover_after=1), concurrency=4, clock=VirtualClock())
    limiter.gate.limit = 2

    async def go():
        ticket = await limiter.admit(REQ)
        limiter.release(ticket)
        limiter.observe(ticket, outcome="failed")

    asyncio.run(go())
    assert limiter.gate.limit == 2 and limiter.stats.cuts == 0


def test_the_status_is_none_when_nothing_holds_the_role_back():
    limiter = RateLimiter(concurrency=4, clock=VirtualClock())
    assert limiter.status() is None
    limiter.stats.rate_limited = 2  # 429s long since recovered from are not throttling
    assert limiter.status() is None


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        RateLimits(rpm=0)
    with pytest.raises(ValueError):
        RateLimits(window_s=0)
    with pytest.raises(ValueError):
        AdaptiveConcurrency(0)
