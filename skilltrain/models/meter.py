"""Token, call and dollar accounting per role and stage, infrastructure failures by kind, and
the budget limits that stop a run cleanly.

With a ledger (the run's SQLite file), every call is recorded as it returns, so usage survives a
kill at any point, even before the first checkpoint; when the ledger turns out to be behind the
checkpoint (run.sqlite deleted, truncated or replaced), the checkpoint's counts are used and the
usage is flagged as not exact (`warning`), in the summary and on the console.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field

from skilltrain.config_sections import BudgetConfig as Limits  # the budget section is the limits
from skilltrain.models.prices import rates  # the price tables live there
from skilltrain.records import Usage

_SENT_COLUMNS = ("sent", "sent_prompt", "sent_completion")  # calls really sent for a key
# Prompt-cache tokens of the distinct call, and of the calls really sent for its key.
_CACHE_COLUMNS = ("cache_read", "cache_write", "sent_cache_read", "sent_cache_write")


class BudgetExceeded(Exception):
    """Raised between stages when a configured limit is reached; the run then ends cleanly."""


@dataclass
class Meter:
    prices: dict[str, tuple[float, ...]] = field(default_factory=dict)  # the config's
    limits: Limits = field(default_factory=Limits)
    usage: dict[tuple[str, str], Usage] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # role -> model name
    failures: Counter = field(default_factory=Counter)  # final infra failures by kind
    retries: Counter = field(default_factory=Counter)  # retried attempts by kind
    cache_hits: int = 0
    billed: dict[str, Usage] = field(default_factory=dict)  # role -> calls actually sent
    ledger: sqlite3.Connection | None = None  # the run's record of distinct calls
    seen: set[str] = field(default_factory=set)
    warning: str | None = None  # why usage may be undercounted (None: it is exact)

    def __post_init__(self) -> None:
        if self.ledger is not None:
            self.ledger.execute(
                "CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, role TEXT, stage TEXT, "
                "model TEXT, prompt_tokens INTEGER, completion_tokens INTEGER)")
            have = {row[1] for row in self.ledger.execute("PRAGMA table_info(ledger)")}
            for column in (*_SENT_COLUMNS, *_CACHE_COLUMNS):  # ledgers from before these
                if column not in have:
                    self.ledger.execute(f"ALTER TABLE ledger ADD COLUMN {column} INTEGER "
                                        "DEFAULT 0")
            self._load_ledger()

    def _load_ledger(self) -> None:
        """Usage and billing as recorded call by call: what a run killed anywhere had spent."""
        assert self.ledger is not None
        self.usage, self.seen, self.billed = {}, set(), {}
        for key, role, stage, model, p, c, n, sp, sc, cr, cw, scr, scw in self.ledger.execute(
                "SELECT key, role, stage, model, prompt_tokens, completion_tokens, "
                f"{', '.join((*_SENT_COLUMNS, *_CACHE_COLUMNS))} FROM ledger"):
            self.seen.add(key)
            self.models.setdefault(role, model)
            self._add(role, stage, Usage(prompt_tokens=p, completion_tokens=c, calls=1,
                                         cache_read_tokens=cr or 0, cache_write_tokens=cw or 0))
            if n:
                self.billed[role] = self.billed.get(role, Usage()) + Usage(
                    prompt_tokens=sp, completion_tokens=sc, calls=n,
                    cache_read_tokens=scr or 0, cache_write_tokens=scw or 0)

    def record(self, key: str, role: str, stage: str, model: str, usage: Usage, *,
               cached: bool) -> None:
        """Usage counts each distinct request of the run once (keyed like the response cache),
        so a run killed and resumed reports the same totals as one that never stopped; `billed`
        counts what was really sent, which is what the budget limits see."""
        self.models[role] = model
        sent = Usage() if cached else usage.model_copy(update={"calls": 1})
        if not cached:
            self.billed[role] = self.billed.get(role, Usage()) + usage
        new = key not in self.seen
        if new:
            self.seen.add(key)
            self._add(role, stage, usage)
        if self.ledger is not None and (new or not cached):
            self.ledger.execute(
                "INSERT INTO ledger (key, role, stage, model, prompt_tokens, completion_tokens, "
                "sent, sent_prompt, sent_completion, cache_read, cache_write, sent_cache_read, "
                "sent_cache_write) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET sent = sent + excluded.sent, sent_prompt = "
                "sent_prompt + excluded.sent_prompt, sent_completion = sent_completion + "
                "excluded.sent_completion, sent_cache_read = sent_cache_read + "
                "excluded.sent_cache_read, sent_cache_write = sent_cache_write + "
                "excluded.sent_cache_write",
                (key, role, stage, model, usage.prompt_tokens, usage.completion_tokens,
                 sent.calls, sent.prompt_tokens, sent.completion_tokens,
                 usage.cache_read_tokens, usage.cache_write_tokens, sent.cache_read_tokens,
                 sent.cache_write_tokens))

    def _add(self, role: str, stage: str, usage: Usage) -> None:
        self.usage[(role, stage)] = self.usage.get((role, stage), Usage()) + usage

    def price(self, model: str) -> tuple[float, float]:
        """(input, output) USD per million tokens; see prices.py for cache tokens."""
        return rates(model, self.prices)[:2]

    def cost_of(self, role: str, usage: Usage) -> float:
        """Prompt tokens at the input rate, except the parts the prompt cache read or wrote,
        which are billed at the cache rates (models/prices.py)."""
        pin, pout, pwrite, pread = rates(self.models.get(role, ""), self.prices)
        cached = usage.cache_read_tokens + usage.cache_write_tokens
        fresh = max(0, usage.prompt_tokens - cached)
        return (fresh * pin + usage.cache_write_tokens * pwrite + usage.cache_read_tokens * pread
                + usage.completion_tokens * pout) / 1e6

    def by_role(self) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for (role, _), u in self.usage.items():
            out[role] = out.get(role, Usage()) + u
        return out

    def total(self) -> Usage:
        return sum(self.usage.values(), Usage())

    def total_cost(self) -> float:
        return sum(self.cost_of(role, u) for (role, _), u in self.usage.items())

    def billed_cost(self) -> float:
        return sum(self.cost_of(role, u) for role, u in self.billed.items())

    def check(self) -> None:
        total = sum(self.billed.values(), Usage())
        lim = self.limits
        if lim.max_calls is not None and total.calls >= lim.max_calls:
            raise BudgetExceeded(f"call limit reached ({total.calls} >= {lim.max_calls})")
        if lim.max_tokens is not None and total.total_tokens >= lim.max_tokens:
            raise BudgetExceeded(f"token limit reached ({total.total_tokens} >= {lim.max_tokens})")
        if lim.max_cost is not None and self.billed_cost() >= lim.max_cost:
            raise BudgetExceeded(f"cost limit reached (${self.billed_cost():.4f} >= "
                                 f"${lim.max_cost:.4f})")

    def summary(self) -> dict:
        roles = {
            role: {**_shown(u), "cost_usd": round(self.cost_of(role, u), 6)}
            for role, u in self.by_role().items()
        }
        stages = {
            f"{role}/{stage}": {**_shown(u), "cost_usd": round(self.cost_of(role, u), 6)}
            for (role, stage), u in sorted(self.usage.items())
        }
        total = self.total()
        return {
            "roles": roles,
            "stages": stages,
            "prompt_cache": {"read_tokens": total.cache_read_tokens,
                             "write_tokens": total.cache_write_tokens},
            "cost_usd": round(self.total_cost(), 6),
            "billed": {r: _shown(u) for r, u in self.billed.items()},
            "billed_cost_usd": round(self.billed_cost(), 6),
            "infra_failures": dict(self.failures),
            "retries": dict(self.retries),
            "cache_hits": self.cache_hits,
            "warning": self.warning,
        }

    def state(self) -> dict:
        """What a resume needs to continue counting where the run left off."""
        return {
            "usage": [[r, s, u.model_dump()] for (r, s), u in self.usage.items()],
            "models": self.models,
            "failures": dict(self.failures),
            "retries": dict(self.retries),
            "cache_hits": self.cache_hits,
            "billed": {r: u.model_dump() for r, u in self.billed.items()},
            "warning": self.warning,
        }

    def restore(self, state: dict) -> None:
        """Counters from the checkpoint; usage and billing from the ledger, which is written
        with every call and so is never behind, unless run.sqlite was lost: then a bucket the
        ledger has fewer calls for than the checkpoint takes the checkpoint's count, and the
        usage is flagged (calls made after that checkpoint may be missing)."""
        self.models = {**dict(state.get("models", {})), **self.models}
        saved = {(r, s): Usage(**u) for r, s, u in state.get("usage", [])}
        billed = {r: Usage(**u) for r, u in state.get("billed", {}).items()}
        self.warning = state.get("warning")
        if self.ledger is None:
            self.usage, self.billed = saved, billed
        else:
            behind = sorted(b for b, u in saved.items()
                            if self.usage.get(b, Usage()).calls < u.calls)
            for bucket in behind:
                self.usage[bucket] = saved[bucket]
            for role, u in billed.items():  # old ledgers do not bill: the checkpoint does
                if self.billed.get(role, Usage()).calls < u.calls:
                    self.billed[role] = u
            if behind:
                self.warning = (
                    "usage may be undercounted: run.sqlite's call ledger is behind state.json "
                    f"for {', '.join(f'{r}/{s}' for r, s in behind)} (deleted, truncated or "
                    "replaced?); those counts come from the last checkpoint")
        self.failures = Counter(state.get("failures", {}))
        self.retries = Counter(state.get("retries", {}))
        self.cache_hits = int(state.get("cache_hits", 0))


def _shown(usage: Usage) -> dict:
    """A usage as the summary shows it: the prompt-cache counts only when there were any."""
    return {k: v for k, v in usage.model_dump().items()
            if v or k not in ("cache_read_tokens", "cache_write_tokens")}


@dataclass(frozen=True)
class CheckpointUsage:
    """What a checkpoint's meter had counted: usage per (role, stage), and final infrastructure
    failures and retried attempts by kind. No cost: prices are applied when a run ends."""

    usage: dict[tuple[str, str], Usage]
    failures: dict[str, int]
    retries: dict[str, int]


def usage_from_checkpoint(data: dict) -> CheckpointUsage:
    """Read what `Meter.state()` wrote (state.json's `meter`) without building a Meter, for a
    reader of a run that has no summary yet; the format stays this module's business."""
    return CheckpointUsage(usage={(r, s): Usage(**u) for r, s, u in data.get("usage") or []},
                           failures=dict(data.get("failures") or {}),
                           retries=dict(data.get("retries") or {}))
