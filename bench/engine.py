"""How fast skilltrain's engine drives an endpoint: tasks per second through
`skilltrain.evaluate` (chat harness) against our scripted OpenAI-compatible server with a fixed
latency, at concurrency 8 / 64 / 256, as a ratio to the latency-bound limit (concurrency /
latency: every slot always busy waiting on the server); the bare OpenAI SDK's rate at zero
latency as the ceiling of one process; the Ray rows (bench/engine_ray.py, 1 and 2 local
workers, when ray is installed); and how target calls per step grow with batch and validation
size (from skilltrain/estimate.py, the same sketch a run prints before it starts).

Each local row is one whole `evaluate` call (the model opened, its connections made, every
task rolled out and scored), `--rounds` latencies long, repeated `--repeat` times; the median is
shown with the range. The machine's load average is printed before and after: the client and
the server share its cores with whatever else runs.

Run: python bench/engine.py [--latency 1] [--rounds 12] [--repeat 3] [--no-ray]
Last line: c64_ratio=R c256_ratio=R ray_ratio=R (ray_ratio: 2 workers at concurrency 64, or
n/a without ray).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # scripted.py: the tasks the server answers

from common import start_scripted_server  # noqa: E402
from scripted import GOOD_RULE, make_tasks  # noqa: E402

import skilltrain  # noqa: E402
from skilltrain.config import ModelConfig, TrainConfig  # noqa: E402
from skilltrain.data import Splits, tasks_from_objects  # noqa: E402
from skilltrain.estimate import estimate  # noqa: E402
from skilltrain.models.meter import Meter  # noqa: E402
from skilltrain.skill import Skill  # noqa: E402

CONCURRENCY = (8, 64, 256)
RAY_CONCURRENCY = 64


def local_rate(base_url: str, concurrency: int, n: int, transport: str = "auto") -> float:
    """Tasks per second of one `skilltrain.evaluate` over n tasks; every one must score."""
    target = ModelConfig(model="scripted-target", base_url=base_url, concurrency=concurrency,
                         timeout=60, transport=transport)
    started = time.monotonic()
    result = skilltrain.evaluate(GOOD_RULE, make_tasks(n), target=target, scorer="exact")
    seconds = time.monotonic() - started
    if result["n"] != n or result["score"] != 1.0:
        raise RuntimeError(f"concurrency {concurrency}: {result['infra_failures']} of {n} "
                           f"tasks failed, score {result['score']}: not a throughput")
    return n / seconds


def bare_sdk_rate(base_url: str, concurrency: int, n: int) -> float:
    """Requests per second of the bare async SDK (`chat.completions.create`, one client, its
    default pool) at `concurrency`: what one process gets with nothing of ours around it."""
    import openai

    async def go() -> float:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                reply = await client.chat.completions.create(
                    model="scripted-target", max_tokens=512,
                    messages=[{"role": "system", "content": GOOD_RULE},
                              {"role": "user", "content": f"What is {i} plus {i + 3}?"}])
                if reply.choices[0].message.content != str(2 * i + 3):
                    raise RuntimeError(f"bare SDK: wrong reply to task {i}")

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        seconds = time.monotonic() - started
        await client.close()
        return n / seconds

    return asyncio.run(go())


def repeated(measure: Any, repeat: int) -> tuple[float, float, float]:
    runs = [measure() for _ in range(repeat)]
    return statistics.median(runs), min(runs), max(runs)


def ray_rows(latency_s: float, tasks: int) -> list[dict] | None:
    """The Ray rows from bench/engine_ray.py, or None where ray or that bench is missing."""
    try:
        import ray  # noqa: F401

        sys.path.insert(0, str(ROOT))
        from bench.engine_ray import measure_ray
    except ImportError:
        return None
    return [{"workers": w, **measure_ray(latency_s, RAY_CONCURRENCY, w, tasks)} for w in (1, 2)]


def calls_per_step(batch: int, val: int, proposals: int, screen: bool) -> int:
    """Target calls one training step makes at most (chat harness), from estimate(): the
    difference between a two-step and a one-step estimate of the same run."""
    tasks = tasks_from_objects(make_tasks(4 * batch + val))
    splits = Splits(train=tasks[: 4 * batch], val=tasks[4 * batch:], test=[])

    def calls(steps: int) -> int:
        cfg = TrainConfig.model_validate({
            "harness": "chat", "target": {"model": "m"}, "optimizer": {"model": "m"},
            "train": {"epochs": 1, "max_steps": steps, "batch_size": batch,
                      "proposals": proposals, "screen": screen}})
        return estimate(cfg, splits, Skill(""), Meter())["target"]["calls"]

    return calls(2) - calls(1)


def candidates(proposals: int) -> int:
    """K: the merged candidate, one per rule proposal, examples and their combination."""
    return 1 + proposals + 2


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=12, help="latencies per local row")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ceiling-tasks", type=int, default=3000)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--transport", default="auto", help="auto, aiohttp or sdk")
    args = parser.parse_args()
    print(f"load average before: {load()} ({os.cpu_count()} cores)", flush=True)
    ratios: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        slow, slow_url = start_scripted_server(Path(tmp), args.latency)
        fast, fast_url = start_scripted_server(Path(tmp), 0.0)
        try:
            from skilltrain.models.openai_compat import pick_transport

            transport = pick_transport(args.transport)
            print(f"\nlocal: skilltrain.evaluate, chat harness, transport {transport}, server "
                  f"latency {args.latency:g} s, {args.rounds} latencies per row, median of "
                  f"{args.repeat} (range)")
            print(f"{'concurrency':>11} {'tasks':>6} {'tasks/s':>16} {'limit/s':>8} "
                  f"{'ratio':>6}")
            for c in CONCURRENCY:
                n = c * args.rounds
                mid, lo, hi = repeated(lambda c=c, n=n: local_rate(slow_url, c, n, transport),
                                       args.repeat)
                limit = c / args.latency
                ratios[c] = mid / limit
                print(f"{c:>11} {n:>6} {mid:>7.1f} ({lo:.0f}-{hi:.0f}) {limit:>8.0f} "
                      f"{ratios[c]:>6.3f}", flush=True)
            if transport != "sdk":  # the other transport's hardest row, for comparison
                n = CONCURRENCY[-1] * args.rounds
                sdk = repeated(lambda n=n: local_rate(slow_url, CONCURRENCY[-1], n, "sdk"),
                               args.repeat)
                print(f"{'(sdk) ' + str(CONCURRENCY[-1]):>11} {n:>6} {sdk[0]:>7.1f} "
                      f"({sdk[1]:.0f}-{sdk[2]:.0f}) {CONCURRENCY[-1] / args.latency:>8.0f} "
                      f"{sdk[0] / (CONCURRENCY[-1] / args.latency):>6.3f}", flush=True)
            ceiling = repeated(lambda: bare_sdk_rate(fast_url, 64, args.ceiling_tasks),
                               args.repeat)
            ours = repeated(lambda: local_rate(fast_url, 64, args.ceiling_tasks, transport),
                            args.repeat)
            print(f"\nzero latency, concurrency 64, {args.ceiling_tasks} tasks: bare OpenAI SDK "
                  f"{ceiling[0]:.0f} req/s ({ceiling[1]:.0f}-{ceiling[2]:.0f}); "
                  f"skilltrain.evaluate {ours[0]:.0f} tasks/s ({ours[1]:.0f}-{ours[2]:.0f})",
                  flush=True)
        finally:
            for proc in (slow, fast):
                proc.terminate()
                proc.wait(timeout=10)

    rows = None if args.no_ray else ray_rows(args.latency, RAY_CONCURRENCY * args.rounds)
    ray_ratio = "n/a"
    if rows is None:
        print("\nray: rows skipped (" + ("--no-ray" if args.no_ray else
                                          "ray or bench/engine_ray.py missing") + ")")
    else:
        print(f"\nray: concurrency {RAY_CONCURRENCY}, local cluster, {rows[0]['tasks']} tasks")
        for row in rows:
            print(f"  {row['workers']} worker{'s' * (row['workers'] > 1)}: "
                  f"{row['tasks_per_s']:.1f} tasks/s, ratio {row['ratio']:.3f}")
        ray_ratio = f"{rows[-1]['ratio']:.2f}"

    print("\ntarget calls per training step (chat harness; upper bound: the gate may race)")
    print(f"{'batch B':>8} {'val V':>6} {'K':>3} {'screen':>7} {'calls/step':>11}")
    for batch, val, proposals, screen in ((10, 50, 3, True), (40, 50, 3, True),
                                          (40, 200, 3, True), (100, 200, 3, True),
                                          (40, 200, 0, True), (40, 200, 3, False)):
        print(f"{batch:>8} {val:>6} {candidates(proposals):>3} {'on' if screen else 'off':>7} "
              f"{calls_per_step(batch, val, proposals, screen):>11}")
    print("  = B + V, plus K x min(B, 30) when screening")
    print(f"\nload average after: {load()}")
    print(f"c64_ratio={ratios[64]:.2f} c256_ratio={ratios[256]:.2f} ray_ratio={ray_ratio}")


if __name__ == "__main__":
    main()
