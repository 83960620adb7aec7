"""The adaptive concurrency of one model instance: how many calls may be in flight at once."""

from __future__ import annotations

import asyncio
from collections import deque


class AdaptiveConcurrency:
    """Calls in flight at once, between 1 and `maximum`: halved on a 429, raised by one after
    `recover_after` successes in a row (additive increase, multiplicative decrease, as TCP
    does). The calls already in flight when the limit was cut were sent under the old limit, so
    their 429s do not cut it again: a burst of refusals halves once, not down to 1."""

    def __init__(self, maximum: int, recover_after: int = 10):
        if maximum < 1:
            raise ValueError(f"concurrency must be at least 1, got {maximum}")
        self.maximum = self.limit = self.lowest = maximum
        self.recover_after = recover_after
        self.in_flight = 0
        self.epoch = 0  # how many cuts so far; a call remembers the epoch it was sent in
        self._streak = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> int:
        """A slot; returns the epoch the call goes in."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return self.epoch
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot, then cancelled
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        return self.epoch

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def succeeded(self) -> bool:
        """One success; True when the limit went up."""
        if self.limit >= self.maximum:
            return False
        self._streak += 1
        if self._streak < self.recover_after:
            return False
        self._streak = 0
        self.limit += 1
        self._wake()
        return True

    def refused(self, epoch: int) -> bool:
        """A 429 for a call sent in `epoch`; True when the limit was cut."""
        self._streak = 0
        if epoch != self.epoch or self.limit == 1:
            return False
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        self.epoch += 1
        return True
