"""One rollout run by another process (a Ray worker) for the driver, and the driver's side of
what that process sends back. Nothing here imports Ray, so it is tested without a cluster.

The driver owns the response cache and the meter; a worker gets a RoleClient whose cache and
meter are views of the driver's, through a `Link`:

- a lookup asks the driver (`Link.lookup`) before the call, so a cached reply (a resumed run, a
  replay, a retried task) is served exactly as it would be locally;
- a reply the worker got from the model (`put`) and each call's usage (`record`) are posted to
  the driver as they happen (`Link.post`), so a worker killed mid-task has still left its calls
  in the driver's cache and ledger, and the task's retry replays them instead of paying again;
- retries, failures and cache hits are counted per task and returned with it (`counts`).

Exceptions do not cross a process boundary faithfully (ModelError and EndpointDown cannot be
unpickled from their args), so a worker returns what it raised as data (`pack_error`) and the
driver raises the same exception again (`raise_packed`).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from typing import Any, Protocol

from skilltrain.data import Task
from skilltrain.models.base import Completion, ModelError
from skilltrain.models.breaker import EndpointDown
from skilltrain.models.cache import request_key
from skilltrain.models.client import ReplayMiss, RoleClient
from skilltrain.models.meter import Meter
from skilltrain.records import Rollout
from skilltrain.redaction import REDACTED
from skilltrain.skill import Skill


class Link(Protocol):
    """The worker's line to the driver."""

    async def lookup(self, key: str) -> Completion | None: ...

    def post(self, event: tuple[Any, ...]) -> None: ...


class Secret:
    """A value that shows in no repr or str: secrets travel to workers in memory (Ray logs
    every runtime_env, env_vars included, in plain text on each node), and a framework that
    prints an argument must not print this one."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self.value,))


class WorkerCache:
    """The driver's response cache as a worker sees it: `fetch` asks the driver (awaited, once
    per request, before RoleClient looks), `get` answers from what was fetched, `put` posts."""

    def __init__(self, link: Link):
        self._link = link
        self._fetched: dict[str, Completion | None] = {}

    async def fetch(self, key: str) -> None:
        self._fetched[key] = await self._link.lookup(key)

    def forget(self, key: str) -> None:
        self._fetched.pop(key, None)

    def get(self, key: str) -> Completion | None:
        return self._fetched.get(key)

    def put(self, *args: Any, **kwargs: Any) -> None:
        self._link.post(("put", args, kwargs))


class WorkerMeter(Meter):
    """A meter that keeps no usage: every call is recorded in the driver's meter (and its
    ledger) by posting it. Counters (retries, failures, cache hits) stay here and go back with
    the task (`counts`)."""

    def __init__(self, link: Link):
        super().__init__()
        self._link = link

    def record(self, *args: Any, **kwargs: Any) -> None:
        self._link.post(("record", args, kwargs))


class WorkerClient(RoleClient):
    """A RoleClient whose cache lookups go to the driver: RoleClient reads its cache without
    awaiting, so the driver's answer is fetched first, then the usual path runs unchanged
    (retries, breaker, replay, accounting all as in the driver)."""

    async def _raw(self, request: dict[str, Any], stage: str, sample: int) -> Completion:
        if not isinstance(self.cache, WorkerCache):
            return await super()._raw(request, stage, sample)
        key = request_key(self.model.name, request, sample)
        await self.cache.fetch(key)
        try:
            return await super()._raw(request, stage, sample)
        finally:
            self.cache.forget(key)


def apply_event(event: tuple[Any, ...], cache: Any, meter: Meter) -> None:
    """What a worker posted, applied to the driver's cache and meter."""
    kind, args, kwargs = event
    if kind == "put":
        if cache is not None:
            cache.put(*args, **kwargs)
    elif kind == "record":
        meter.record(*args, **kwargs)
    else:
        raise ValueError(f"unknown worker event {kind!r}")


def counts(meter: Meter) -> dict[str, Any]:
    return {"retries": dict(meter.retries), "failures": dict(meter.failures),
            "cache_hits": meter.cache_hits}


def add_counts(meter: Meter, got: dict[str, Any]) -> None:
    meter.retries.update(got.get("retries") or {})
    meter.failures.update(got.get("failures") or {})
    meter.cache_hits += int(got.get("cache_hits") or 0)


class WorkerError(RuntimeError):
    """A rollout raised on a worker something other than a model or replay error: a bug, as it
    would be locally, reported with the worker's traceback."""


def pack_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, EndpointDown):
        return {"type": "EndpointDown", "role": exc.role, "endpoint": exc.endpoint,
                "reason": exc.reason, "attempts": exc.attempts, "answered": exc.answered,
                "outage_s": exc.outage_s, "note": exc.note}
    if isinstance(exc, ModelError):
        return {"type": "ModelError", "kind": exc.kind, "message": exc.message,
                "retry_after": exc.retry_after}
    if isinstance(exc, ReplayMiss):
        return {"type": "ReplayMiss", "message": str(exc)}
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"type": "other", "message": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(lines[-6:])}


def raise_packed(packed: dict[str, Any]) -> None:
    kind = packed["type"]
    if kind == "EndpointDown":
        down = EndpointDown(packed["role"], packed["endpoint"], packed["reason"],
                            packed["attempts"], answered=packed["answered"],
                            outage_s=packed["outage_s"])
        down.note = packed["note"]
        raise down
    if kind == "ModelError":
        raise ModelError(packed["kind"], packed["message"], retry_after=packed["retry_after"])
    if kind == "ReplayMiss":
        raise ReplayMiss(packed["message"])
    raise WorkerError(f"a rollout failed on a worker: {packed['message']}\n"
                      f"{packed.get('traceback', '')}")


async def run_one(harness: Any, client: RoleClient, skill: Skill, task: Task, sample: int
                  ) -> dict[str, Any]:
    """Run one task; what it returned or raised, as data a process boundary keeps."""
    try:
        rollout: Rollout | None = await harness.run(skill, task, client, sample)
        error = None
    except Exception as exc:  # everything goes back to the driver, which raises it again
        rollout, error = None, pack_error(exc)
    return {"rollout": rollout, "error": error, "counts": counts(client.meter)}


class KeyScrubbed:
    """A worker's model whose error texts carry none of the secrets the worker was given
    (endpoints echo keys back in error bodies): the driver's ScrubbedModel, for one process
    that holds only the target's secrets."""

    def __init__(self, model: Any, secrets: Iterable[str]):
        self.inner, self.name = model, model.name
        self._secrets = sorted((s for s in secrets if s and len(s) >= 6), key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    async def complete(self, request: dict[str, Any]) -> Completion:
        try:
            return await self.inner.complete(request)
        except ModelError as exc:
            exc.message = self._scrub(exc.message)
            exc.args = tuple(self._scrub(a) if isinstance(a, str) else a for a in exc.args)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
