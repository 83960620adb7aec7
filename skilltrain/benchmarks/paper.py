"""The paper's training defaults, as dotted config keys, for `--preset paper`.

Every number is from ../shared/SPEC.md, "Paper defaults (direct chat)": epochs 4; batch 40;
minibatch 8; merge group 8; learning rate 4, min 2, cosine; slow update on (20 samples); meta
skill on; gate on, metric hard. SPEC.md gives one set for all six benchmarks and no per-benchmark
values (nor the agent turn limit), so each benchmark uses these and adds only what its adapter
states with its source. The paper's gate is the strict comparison of means (`gate.rule: strict`).
"""

from __future__ import annotations

from typing import Any

PAPER_DEFAULTS: dict[str, Any] = {
    "train.epochs": 4, "train.batch_size": 40, "train.minibatch_size": 8,
    "train.merge_group": 8, "train.lr": 4, "train.lr_min": 2, "train.lr_schedule": "cosine",
    "train.slow_update": "gated", "train.slow_update_samples": 20, "train.meta_skill": True,
    "gate.rule": "strict", "gate.metric": "hard",
}


def paper_overrides(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The paper's defaults plus a benchmark's own settings (a fresh dict each call)."""
    return {**PAPER_DEFAULTS, **(extra or {})}
