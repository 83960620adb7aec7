"""Where the rate limiter meets the rest: the role config's rpm / tpm reach the model's limiter,
the live progress shows a throttled role, and the summary line counts the waits."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from rich.console import Console

from skilltrain.config import ConfigError, ModelConfig, parse_config
from skilltrain.console import LiveProgress, rate_limit_line
from skilltrain.models.registry import open_model


def test_config_rpm_and_tpm_reach_the_models_limiter():
    async def go():
        async with AsyncExitStack() as stack:
            cfg = ModelConfig(model="m", base_url="http://127.0.0.1:9/v1", rpm=30, tpm=9000,
                              concurrency=12)
            model = await open_model(cfg, stack, "target")
            return model.limiter

    limiter = asyncio.run(go())
    assert limiter.limits.rpm == 30 and limiter.limits.tpm == 9000
    assert limiter.limits.window_s == 60.0 and limiter.gate.maximum == 12


def test_config_refuses_a_zero_rpm_naming_the_field():
    with pytest.raises(ConfigError, match="target.rpm"):
        parse_config({"target": {"model": "m", "rpm": 0}})


def test_live_progress_shows_a_throttled_role_and_drops_it_after():
    console = Console(width=120, record=True, force_terminal=False)
    live = LiveProgress(console=console)
    try:
        live({"event": "throttle", "role": "target",
              "status": "429 x3, concurrency 16->4, waiting 2.0 s for rpm"})
        with console.capture() as shown:
            console.print(live._render())
        assert "target: 429 x3, concurrency 16->4, waiting 2.0 s for rpm" in shown.get()
        live({"event": "throttle", "role": "target", "status": None})
        with console.capture() as after:
            console.print(live._render())
        assert "target:" not in after.get()
    finally:
        live.close()


def test_summary_line_counts_rate_limit_waits():
    line = rate_limit_line({"target": {"rate_limited": 3, "waits": 12, "wait_s": 8.14,
                                       "concurrency_cuts": 2, "lowest_concurrency": 4},
                            "optimizer": {"rate_limited": 0, "waits": 0}})
    assert line == "rate limits: target 429 x3, 12 waits (8.1 s), concurrency down to 4"
    assert rate_limit_line({"target": {"rate_limited": 0, "waits": 0}}) is None
