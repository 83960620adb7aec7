"""Shared plumbing for the benches: run one training on a suite and collect its figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from skilltrain import Trainer


def run_suite(suite: str, out: Path, *, target: str, optimizer: str, overrides: dict[str, Any]
              ) -> dict[str, Any]:
    config = {
        "suite": suite, "out": str(out),
        "target": {"model": target},
        "optimizer": {"model": optimizer, "max_tokens": 1024},
    }
    started = time.monotonic()
    trainer = Trainer(config, **overrides).fit()
    s = trainer.summary_
    return {
        "suite": suite,
        "test_initial": s["test"]["initial"], "test_best": s["test"]["best"],
        "val_initial": s["val"]["initial"], "val_best": s["val"]["best"],
        "accepted": s["steps"]["accepted"], "rejected": s["steps"]["rejected"],
        "skipped": s["steps"]["skipped"],
        "target_calls": s["usage"].get("target", {}).get("calls", 0),
        "optimizer_calls": s["usage"].get("optimizer", {}).get("calls", 0),
        "wall_s": round(time.monotonic() - started, 1),
    }


def fmt(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(widths[c]) for c in columns))
