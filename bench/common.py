"""Shared plumbing for the benches: run one training on a suite and collect its figures.

A run is configured the way `skilltrain train` configures one: dotted flags merged into the
default TrainConfig, so every setting the flags leave alone (optimizer reply budget included) is
the package default, and `overrides` add the bench's own settings on top.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from skilltrain import Trainer


def train_settings(suite: str, out: Path, *, target: str, optimizer: str,
                   seed: int | None = None, overrides: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The dotted settings of `skilltrain train --suite SUITE --target T --optimizer O
    [--seed N] --out OUT`, plus `overrides`."""
    settings: dict[str, Any] = {"suite": suite, "out": str(out), "target.model": target,
                                "optimizer.model": optimizer}
    if seed is not None:
        settings["seed"] = seed
    return {**settings, **(overrides or {})}


def train_suite(suite: str, out: Path, *, target: str, optimizer: str, seed: int | None = None,
                overrides: dict[str, Any] | None = None,
                callbacks: Iterable[Callable[[dict], None]] = ()) -> tuple[Trainer, float]:
    """Train on a suite; the fitted Trainer and the wall seconds of the run."""
    trainer = Trainer(None, callbacks=callbacks,
                      **train_settings(suite, out, target=target, optimizer=optimizer,
                                       seed=seed, overrides=overrides))
    started = time.monotonic()
    trainer.fit()
    return trainer, round(time.monotonic() - started, 1)


def summary_row(suite: str, s: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """The figures of one run's summary that the benches print."""
    steps = s["steps"]
    return {
        "suite": suite,
        "test_initial": s["test"]["initial"], "test_best": s["test"]["best"],
        "val_initial": s["val"]["initial"], "val_best": s["val"]["best"],
        "accepted": steps["accepted"], "rejected": steps["rejected"],
        "screened": steps.get("screened", 0), "skipped": steps["skipped"],
        "target_calls": s["usage"].get("target", {}).get("calls", 0),
        "optimizer_calls": s["usage"].get("optimizer", {}).get("calls", 0),
        "wall_s": wall_s,
    }


def run_suite(suite: str, out: Path, *, target: str, optimizer: str,
              overrides: dict[str, Any] | None = None, seed: int | None = None
              ) -> dict[str, Any]:
    trainer, wall_s = train_suite(suite, out, target=target, optimizer=optimizer, seed=seed,
                                  overrides=overrides)
    return summary_row(suite, trainer.summary_, wall_s)


def fmt(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns), flush=True)
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(widths[c]) for c in columns), flush=True)


def start_scripted_server(folder: Path, latency_s: float) -> tuple[subprocess.Popen, str]:
    """tests/e2e/scripted_server.py in a subprocess answering after `latency_s`; the process
    and its base URL, once it has written its port."""
    port_file = folder / f"port-{latency_s:g}"
    server = Path(__file__).resolve().parents[1] / "tests" / "e2e" / "scripted_server.py"
    proc = subprocess.Popen([sys.executable, str(server), "--port-file", str(port_file),
                             "--plan", "none", "--latency", str(latency_s)])
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the scripted server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{int(port_file.read_text())}/v1"
