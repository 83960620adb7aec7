"""The paper's benchmarks, read from files the user brings (see base.py)."""

from skilltrain.benchmarks.base import Benchmark, BenchmarkError
from skilltrain.benchmarks.registry import builtin_benchmarks, get_benchmark

__all__ = ["Benchmark", "BenchmarkError", "builtin_benchmarks", "get_benchmark"]
