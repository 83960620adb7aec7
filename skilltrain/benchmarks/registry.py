"""The paper benchmarks by name. Built fresh on each call (no module-level mutable state)."""

from __future__ import annotations

from typing import Any

from skilltrain.benchmarks import (
    alfworld,
    docvqa,
    livemath,
    officeqa,
    searchqa,
    spreadsheet,
)
from skilltrain.benchmarks.base import Benchmark, BenchmarkError
from skilltrain.benchmarks.paper import paper_overrides


def builtin_benchmarks() -> dict[str, Benchmark]:
    return {b.name: b for b in (searchqa.BENCHMARK, livemath.BENCHMARK, docvqa.BENCHMARK,
                                  officeqa.BENCHMARK, spreadsheet.BENCHMARK,
                                  alfworld.BENCHMARK)}


def get_benchmark(name: str) -> Benchmark:
    found = builtin_benchmarks()
    if name not in found:
        raise BenchmarkError(f"benchmark {name!r}: unknown; available: "
                             f"{', '.join(sorted(found))}")
    return found[name]


PRESETS = ("paper",)


def preset_overrides(preset: str, benchmark: str | None,
                     flags: dict[str, Any]) -> dict[str, Any]:
    """Flags over the preset's settings: a flag the user gave wins, the preset fills the rest
    (so a preset also sets keys a config file set: the order is file < preset < flags)."""
    if preset not in PRESETS:
        raise BenchmarkError(f"--preset {preset!r}: unknown; available: {', '.join(PRESETS)}")
    settings = dict(get_benchmark(benchmark).paper) if benchmark else paper_overrides()
    if flags.get("train.lr") is not None and flags.get("train.lr_min") is None:
        settings.pop("train.lr_min", None)  # a given lr brings its own floor (config.py)
    merged = dict(flags)
    for key, value in settings.items():
        if merged.get(key) is None:
            merged[key] = value
    return merged


def benchmark_test(name: str, data_dir: str | None) -> tuple[list[Any], Any]:
    """The test split and scorer `skilltrain eval --benchmark` scores a skill on."""
    bench = get_benchmark(name)
    data_dir = bench.data_dir(data_dir)
    splits = bench.load(data_dir)
    if not splits.test:
        raise BenchmarkError(f"benchmark {name}: the manifest under {data_dir} names no test "
                             "items")
    return splits.test, bench.scorer
