"""RoleClient: one role's view of a model (target, optimizer, judge).

Everything a call needs beyond the raw HTTP lives here, once: the response cache, retries with
backoff and jitter, a circuit breaker that ends a run whose endpoint cannot be reached (see
breaker.py), schema-constrained output validated with pydantic (one retry on an invalid reply,
then an infrastructure failure, never a silent fallback; a reply cut at the token limit is
instead retried once with a larger limit), replay mode, and accounting by role and stage.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from skilltrain.config import ROLE_MAX_TOKENS, ModelConfig
from skilltrain.models.base import ChatModel, Completion, ModelError
from skilltrain.models.breaker import Breaker, EndpointDown, endpoint_of
from skilltrain.models.cache import ResponseCache, request_key
from skilltrain.models.meter import Meter

T = TypeVar("T", bound=BaseModel)


class ReplayMiss(Exception):
    """In replay mode a request was not in the cache; the message names it."""


@dataclass
class CallSettings:
    """Per-role call options. `max_tokens_cap` bounds the one larger-limit retry a structured
    call makes when its reply was cut at `max_tokens` (finish reason "length").

    The breaker (breaker.py) opens after `open_after` connection-level failed attempts in a row
    before the endpoint has answered once; after it has, only after `stop_after` in a row that
    also span `stop_after_s` seconds, so a restarting server costs retries, not the run.
    """

    temperature: float = 0.0
    max_tokens: int = 1024
    max_tokens_cap: int = 8192
    seed: int | None = 0
    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    extra_body: dict[str, Any] = field(default_factory=dict)
    open_after: int = 5
    stop_after: int = 40
    stop_after_s: float = 120.0

    @classmethod
    def for_role(cls, mcfg: ModelConfig, role: str) -> CallSettings:
        """A role's settings from its config section: the one place that maps config keys to
        call options (a section outside a TrainConfig has no role default applied yet)."""
        return cls(temperature=mcfg.temperature,
                   max_tokens=mcfg.max_tokens or ROLE_MAX_TOKENS[role], seed=mcfg.seed,
                   retries=mcfg.retries, backoff_s=mcfg.retry_backoff)


class RoleClient:
    def __init__(
        self,
        model: ChatModel,
        role: str,
        meter: Meter,
        *,
        cache: ResponseCache | None = None,
        settings: CallSettings | None = None,
        replay: bool = False,
    ):
        self.model = model
        self.role = role
        self.meter = meter
        self.cache = cache
        self.settings = settings or CallSettings()
        self.replay = replay
        self.notes = ""  # optimizer-only notes (the meta skill): see with_notes
        self.breaker = Breaker(role, endpoint_of(model))
        self._rng = random.Random()

    @property
    def limiter(self) -> Any:
        """The backend's rate limiter (limits.py: rpm / tpm, 429 back-off), when it has one:
        the live progress and the summary read it."""
        return getattr(self.model, "limiter", None)

    def with_notes(self, notes: str) -> RoleClient:
        """This client with optimizer-only notes (the meta skill) prepended to every call: the
        same model, meter, cache and breaker. The trainer derives one per step from the run
        state, so the notes are an input of the step, not a setting changed behind it."""
        view = copy.copy(self)
        view.notes = notes
        return view

    def _request(self, messages: list[dict[str, Any]], schema: type[BaseModel] | None,
                 max_tokens: int | None, tools: list[dict[str, Any]] | None,
                 temperature: float | None, sample: int = 0) -> dict[str, Any]:
        """The request body. Sample k > 0 of the same request gets seed + k: a sampling server
        with a fixed seed would otherwise return the same sample every time."""
        s = self.settings
        if self.notes:
            messages = [{"role": "system", "content": "Notes from earlier epochs of this "
                         "training run (for you, the optimizer):\n" + self.notes}, *messages]
        req: dict[str, Any] = {
            "messages": messages,
            "temperature": s.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or s.max_tokens,
        }
        if s.seed is not None:
            req["seed"] = s.seed + sample
        if schema is not None:
            req["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
            }
        if tools:
            req["tools"] = tools
        if s.extra_body:
            req["extra_body"] = dict(s.extra_body)
        return req

    async def _raw(self, request: dict[str, Any], stage: str, sample: int) -> Completion:
        key = request_key(self.model.name, request, sample)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.meter.cache_hits += 1
                self.meter.record(key, self.role, stage, self.model.name, hit.usage,
                                  cached=True)
                return hit
        if self.replay:
            preview = json.dumps(request.get("messages", [])[-1:], ensure_ascii=False)[:300]
            raise ReplayMiss(f"replay: no cached reply for {self.role}/{stage} request "
                             f"{key[:12]} (sample {sample}); last message: {preview}")
        completion = await self._with_retries(request, stage)
        if self.cache is not None:
            self.cache.put(key, self.model.name, request, completion)
        self.meter.record(key, self.role, stage, self.model.name, completion.usage,
                          cached=False)
        return completion

    async def _with_retries(self, request: dict[str, Any], stage: str) -> Completion:
        s = self.settings
        for attempt in range(s.retries + 1):
            self.breaker.check()
            try:
                completion = await self.model.complete(request)
            except ModelError as exc:
                self.breaker.failure(exc, open_after=s.open_after, stop_after=s.stop_after,
                                     stop_after_s=s.stop_after_s)
                if not exc.retryable or attempt == s.retries:
                    raise
                self.meter.retries[exc.kind] += 1
                delay = min(s.max_backoff_s, s.backoff_s * 2**attempt)
                delay *= 0.5 + self._rng.random()
                if exc.retry_after is not None:  # the server's own wait, capped
                    delay = max(delay, min(exc.retry_after, s.max_backoff_s))
                await asyncio.sleep(delay)
            else:
                self.breaker.success()
                return completion
        raise AssertionError("unreachable")

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        stage: str,
        sample: int = 0,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """A plain call. Raises ModelError (counted) when the endpoint fails after retries."""
        request = self._request(messages, None, max_tokens, tools, temperature, sample)
        try:
            return await self._raw(request, stage, sample)
        except ModelError as exc:
            self.meter.failures[_counted_as(exc)] += 1
            raise

    async def structured(
        self,
        messages: list[dict[str, Any]],
        schema: type[T],
        *,
        stage: str,
        sample: int = 0,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> T:
        """A schema-constrained call whose reply is validated.

        An invalid reply gets one corrective retry. A reply cut at the token limit (finish
        reason "length") would be cut again by the same request, so it gets instead one retry
        with twice the limit (up to `max_tokens_cap`); cut again, it is a "truncated" failure
        that names the limit. A cut reply that still validates is kept: nothing to fix.
        """
        limit = max_tokens or self.settings.max_tokens
        asked = messages
        grown = corrected = False
        try:
            while True:
                request = self._request(asked, schema, limit, None, temperature, sample)
                completion = await self._raw(request, stage, sample)
                try:
                    return _parse(completion.text, schema)
                except ValueError as exc:
                    error = exc
                if completion.finish_reason == "length":
                    bigger = min(limit * 2, self.settings.max_tokens_cap)
                    if grown or bigger <= limit:
                        raise ModelError("truncated", (
                            f"{schema.__name__}: the {self.role} reply was cut at the "
                            f"max_tokens limit of {limit} tokens ({error}); raise "
                            f"{self.role}.max_tokens")) from None
                    grown, limit = True, bigger
                    self.meter.retries["length"] += 1
                    continue
                if corrected:
                    raise ModelError("invalid_output", f"{schema.__name__}: {error}") from None
                corrected = True
                asked = [
                    *messages,
                    {"role": "assistant", "content": completion.text[:4000]},
                    {"role": "user", "content": (
                        f"That reply was not valid ({error}). Answer again with only a JSON "
                        "object that matches the schema."
                    )},
                ]
        except ModelError as exc:
            self.meter.failures[_counted_as(exc)] += 1
            raise


def _counted_as(exc: ModelError) -> str:
    """The failure kind a call is counted under: an open breaker's error is "fatal" so that it
    stops the run, but what the call met is an unreachable endpoint."""
    return "unreachable" if isinstance(exc, EndpointDown) else exc.kind


def _parse(text: str, schema: type[T]) -> T:
    raw = text.strip()
    if raw.startswith("```"):
        raw = raw.strip("`")
        raw = raw[raw.find("{"):] if "{" in raw else raw
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "reply"
        raise ValueError(f"{where}: {first.get('msg', 'invalid')}") from None
