"""Provider rate limits over Anthropic's Messages API: our scripted Messages server as a provider
with a request limit (429 `rate_limit_error` with retry-after, `anthropic-ratelimit-*` headers
on every reply), and an `anthropic:` target's limiter keeping what it sends under the configured
rpm while the evaluation finishes with nothing scored as a fault. As in test_rate_limits.py,
windows of 2 s stand in for the minute."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("anthropic", reason="the anthropic SDK is not installed (pip install "
                    "'skilltrain[anthropic]')")

from e2e.test_anthropic_train import MessagesServer  # noqa: E402
from e2e.test_rate_limits import evaluate_with, most_in_any_window  # noqa: E402
from skilltrain.models.anthropic_model import AnthropicModel  # noqa: E402
from skilltrain.models.limits import RateLimits  # noqa: E402

WINDOW = 2.0  # seconds: the test's "minute"
PROVIDER_RPM = 4  # what the scripted provider allows per WINDOW


@pytest.fixture
def provider(tmp_path):
    server = MessagesServer(tmp_path, ["--rpm", str(PROVIDER_RPM), "--rate-window", str(WINDOW)])
    yield server
    server.stop()


def arrivals(server: MessagesServer) -> list[dict]:
    path = server.log.with_name(server.log.name + ".arrivals.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def evaluate_through(server: MessagesServer, limits: RateLimits, n_tasks: int,
                     shown: list | None = None) -> tuple[dict, AnthropicModel]:
    """One evaluation at concurrency 16 against the scripted Messages provider."""
    return evaluate_with(lambda: AnthropicModel("scripted-target", base_url=server.url,
                                                api_key="sk-ant-test", timeout=10,
                                                concurrency=16, limits=limits), n_tasks, shown)


def test_over_the_providers_limit_429s_are_honoured_and_nothing_is_scored_as_a_fault(provider):
    """Configured above what the provider allows (6 vs 4 per window): the provider's 429s are
    seen, the limiter still never sends more than 6 in a window, reads the provider's
    `anthropic-ratelimit-*` headers, halves its concurrency, and every task ends scored."""
    shown: list[str | None] = []
    result, model = evaluate_through(provider, RateLimits(rpm=6, window_s=WINDOW, margin_s=0.25),
                                     n_tasks=16, shown=shown)
    seen = arrivals(provider)
    refused = sum(a["status"] == 429 for a in seen)
    assert result["n"] == 16 and result["infra_failures"] == 0 and result["score"] == 1.0
    assert refused >= 1  # the provider's limit was met
    assert most_in_any_window([a["t"] for a in seen], WINDOW) <= 6  # 429'd sends count too
    limits = result["rate_limits"]
    assert limits["rate_limited"] == refused  # each 429 the server sent was seen and counted
    assert limits["concurrency_cuts"] >= 1 and limits["lowest_concurrency"] <= 8
    assert limits["waits"] >= 1
    assert model.limiter.quota["requests"].cap == PROVIDER_RPM  # Anthropic's headers were read
    assert len(seen) == 16 + refused  # every refused call was sent again, once per 429
    assert any(s and "429 x1, concurrency 16->8" in s for s in shown)  # the live progress line


def test_at_the_providers_limit_the_limiter_alone_avoids_every_429(provider):
    result, _ = evaluate_through(provider, RateLimits(rpm=PROVIDER_RPM, window_s=WINDOW,
                                                      margin_s=0.25), n_tasks=12)
    seen = arrivals(provider)
    assert result["n"] == 12 and result["infra_failures"] == 0 and result["score"] == 1.0
    assert [a["status"] for a in seen] == [200] * 12
    assert most_in_any_window([a["t"] for a in seen], WINDOW) <= PROVIDER_RPM
    assert result["rate_limits"]["rate_limited"] == 0
    assert result["rate_limits"]["waits"] >= 12 - PROVIDER_RPM  # held back instead of refused
