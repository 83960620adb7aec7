"""Provider rate limits over real HTTP: our scripted server as a provider with a request limit
(429s with retry-after, x-ratelimit-* headers on every reply), and the target's limiter keeping
what it sends under the configured rpm while the evaluation finishes with nothing scored as a
fault. Windows of 2 s stand in for the minute, so each test runs in seconds."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripted import GOOD_RULE, make_tasks  # noqa: E402

from skilltrain.api import aevaluate  # noqa: E402
from skilltrain.models.limits import RateLimits  # noqa: E402
from skilltrain.models.openai_compat import OpenAIModel  # noqa: E402

WINDOW = 2.0  # seconds: the test's "minute"
PROVIDER_RPM = 4  # what the scripted provider allows per WINDOW


def arrivals(server) -> list[dict]:
    path = Path(str(server.log) + ".arrivals.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def most_in_any_window(times: list[float], span: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def evaluate_with(make: Callable[[], Any], n_tasks: int, shown: list | None = None
                  ) -> tuple[dict, Any]:
    """One evaluation through the model `make()` builds (in the loop it runs in); `shown`
    collects what the live progress would show. The Anthropic limits test uses it too."""
    async def go() -> tuple[dict, Any]:
        model = make()
        if shown is not None:
            model.limiter.on_change = shown.append
        try:
            result = await aevaluate(GOOD_RULE, make_tasks(n_tasks), target=model,
                                     scorer="exact")
        finally:
            await model.aclose()
        return result, model

    return asyncio.run(go())


def evaluate_through(server, limits: RateLimits, n_tasks: int, shown: list | None = None
                     ) -> tuple[dict, OpenAIModel]:
    """One evaluation at concurrency 16 against the scripted OpenAI-compatible provider."""
    return evaluate_with(lambda: OpenAIModel("scripted-target", base_url=server.base_url,
                                             api_key="k", timeout=10, concurrency=16,
                                             limits=limits), n_tasks, shown)


def test_over_the_providers_limit_the_429s_are_honoured_and_nothing_is_scored_as_a_fault(
        scripted_server):
    """Configured above what the provider allows (6 vs 4 per window): the provider refuses
    the excess with 429s; the limiter still never sends more than its 6 per window, backs off
    (retry-after, the remaining-requests headers, half the concurrency) and every task ends
    scored."""
    server = scripted_server(extra=["--rpm", str(PROVIDER_RPM), "--rate-window", str(WINDOW)])
    shown: list[str | None] = []
    result, model = evaluate_through(server, RateLimits(rpm=6, window_s=WINDOW, margin_s=0.25),
                                     n_tasks=16, shown=shown)
    seen = arrivals(server)
    refused = sum(a["status"] == 429 for a in seen)
    assert result["n"] == 16 and result["infra_failures"] == 0 and result["score"] == 1.0
    assert refused >= 1  # the provider's limit was met
    assert most_in_any_window([a["t"] for a in seen], WINDOW) <= 6  # 429'd sends count too
    limits = result["rate_limits"]
    assert limits["rate_limited"] == refused  # each 429 the server sent was seen and counted
    assert limits["concurrency_cuts"] >= 1 and limits["lowest_concurrency"] <= 8
    assert limits["waits"] >= 1
    assert model.limiter.quota["requests"].cap == PROVIDER_RPM  # the headers were read
    assert len(seen) == 16 + refused  # every refused call was sent again, once per 429
    assert any(s and "429 x1, concurrency 16->8" in s for s in shown)  # the live progress line


def test_at_the_providers_limit_the_limiter_alone_avoids_every_429(scripted_server):
    server = scripted_server(extra=["--rpm", str(PROVIDER_RPM), "--rate-window", str(WINDOW)])
    result, _ = evaluate_through(server, RateLimits(rpm=PROVIDER_RPM, window_s=WINDOW,
                                                    margin_s=0.25), n_tasks=12)
    seen = arrivals(server)
    assert result["n"] == 12 and result["infra_failures"] == 0 and result["score"] == 1.0
    assert [a["status"] for a in seen] == [200] * 12
    assert most_in_any_window([a["t"] for a in seen], WINDOW) <= PROVIDER_RPM
    assert result["rate_limits"]["rate_limited"] == 0
    assert result["rate_limits"]["waits"] >= 12 - PROVIDER_RPM  # held back instead of refused


def test_rate_limit_counters_survive_a_resume(scripted_server, tmp_path):
    """A run refused with 429s, stopped by its budget and resumed: the summary counts the 429s
    of both processes (the checkpoint keeps the first one's), not only the second's."""
    from skilltrain import Trainer

    server = scripted_server("good", ["--faults", "0.3", "--fault-kinds", "429"])
    role = {"model": "scripted-target", "base_url": server.base_url, "api_key": "k",
            "retry_backoff": 0.01, "retries": 8}
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "gate": {"rule": "strict"},
              "target": role, "optimizer": {**role, "model": "scripted-opt"},
              "train": {"epochs": 1, "batch_size": 6, "lr": 2, "lr_min": 1, "proposals": 0,
                        "screen": False, "demonstrations": False}}
    tasks, skill = make_tasks(24), "---\nname: adder\ndescription: sums\n---\nAdd them.\n"
    first = Trainer({**config, "budget": {"max_calls": 20}}).fit(tasks, skill)
    assert first.summary_["stopped"]
    before = first.summary_["rate_limits"]["target"]["rate_limited"]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["rate_limits"]["target"]["rate_limited"] == before > 0
    second = Trainer(config).fit(tasks, skill)
    after = second.summary_["rate_limits"]
    assert not second.summary_["stopped"]
    assert after["target"]["rate_limited"] >= before
    assert after["target"]["rate_limited"] + after["optimizer"]["rate_limited"] == \
        second.summary_["infra_failures"]["retried"].get("rate_limit", 0)
