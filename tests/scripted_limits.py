"""The scripted servers' provider rate limit: a request bucket that refills continuously (as
OpenAI and Anthropic describe their limits), rate-limit headers on every reply (OpenAI's
`x-ratelimit-*`, or Anthropic's `anthropic-ratelimit-*` with RFC 3339 reset times), and a 429
with `retry-after` once the bucket is empty; every arrival is logged with its status, so a test
can count what a client really sent in any window."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def go_duration(seconds: float) -> str:
    """A reset the way OpenAI writes one: "20ms", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"


class RequestBucket:
    """`limit` requests per `window` seconds: holds up to `limit`, one back every
    window / limit seconds. Rejected requests take nothing. `style` is whose headers are sent:
    "openai" or "anthropic" (which sends `retry-after` in seconds only)."""

    def __init__(self, limit: int, window: float, arrivals: Path | None, style: str = "openai"):
        self.limit, self.window, self.style = limit, window, style
        self.level = float(limit)
        self.at = time.monotonic()
        self.arrivals = arrivals
        self.lock = threading.Lock()

    def take(self) -> tuple[int, dict[str, str]]:
        """The status to answer with (200 or 429) and the rate-limit headers to send."""
        with self.lock:
            now = time.monotonic()
            rate = self.limit / self.window
            self.level = min(self.limit, self.level + (now - self.at) * rate)
            self.at = now
            ok = self.level >= 1
            if ok:
                self.level -= 1
            full_in = (self.limit - self.level) / rate
            if self.style == "anthropic":
                full_at = datetime.now(timezone.utc) + timedelta(seconds=full_in)
                headers = {"anthropic-ratelimit-requests-limit": str(self.limit),
                           "anthropic-ratelimit-requests-remaining": str(math.floor(self.level)),
                           "anthropic-ratelimit-requests-reset": full_at.isoformat()}
            else:
                headers = {"x-ratelimit-limit-requests": str(self.limit),
                           "x-ratelimit-remaining-requests": str(math.floor(self.level)),
                           "x-ratelimit-reset-requests": go_duration(full_in)}
            if not ok:
                wait = (1 - self.level) / rate
                headers["retry-after"] = str(math.ceil(wait))
                if self.style != "anthropic":
                    headers["retry-after-ms"] = str(math.ceil(wait * 1000))
            if self.arrivals is not None:
                with open(self.arrivals, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"t": now, "status": 200 if ok else 429}) + "\n")
            return (200 if ok else 429), headers
