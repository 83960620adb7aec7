"""The Ray rows of the engine bench: tasks per second when rollouts run on Ray workers
(`executor: ray`), against our scripted OpenAI-compatible server with a fixed latency.

`measure_ray(latency_s, concurrency, workers, tasks)` starts the server (tests/e2e/
scripted_server.py --latency), opens a RayExecutor with `workers` workers sharing `concurrency`
tasks in flight (a local Ray cluster on 127.0.0.1 started for the measurement, or the cluster at
RAY_ADDRESS), and times one Evaluator pass over `tasks` chat tasks, cluster start excluded. The
ratio is to the latency-bound limit, concurrency / latency tasks per second. With `cache=True`
the target client has a response cache, as a training run does: every call then also asks the
driver for a cached reply first (one more round trip through the relay).

Run alone: python bench/engine_ray.py [--latency 1] [--concurrency 64] [--workers 1 2]
                                      [--tasks 2000] [--cache]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # scripted.py: the tasks the server answers

from common import start_scripted_server  # noqa: E402
from scripted import GOOD_RULE, make_tasks  # noqa: E402

from skilltrain.config import ModelConfig  # noqa: E402
from skilltrain.config_sections import ExecutorConfig  # noqa: E402
from skilltrain.data import tasks_from_objects  # noqa: E402
from skilltrain.evaluation import Evaluator  # noqa: E402
from skilltrain.harness.chat import ChatHarness  # noqa: E402
from skilltrain.models.cache import ResponseCache  # noqa: E402
from skilltrain.models.client import RoleClient  # noqa: E402
from skilltrain.models.meter import Meter  # noqa: E402
from skilltrain.models.openai_compat import OpenAIModel  # noqa: E402
from skilltrain.ray_executor import open_ray_executor  # noqa: E402
from skilltrain.scoring import make_scorer  # noqa: E402
from skilltrain.skill import Skill  # noqa: E402


class _Scores:
    """A score store for one pass: nothing is cached, so every task runs."""

    def get(self, skill_hash: str, task_id: str, sample: int) -> None:
        return None

    def put(self, rollout: Any) -> None:
        return None


async def _measure(base_url: str, folder: Path, concurrency: int, workers: int, n: int,
                   cache: bool) -> tuple[float, int]:
    tasks = tasks_from_objects(make_tasks(n))
    slots = max(1, concurrency // workers)
    target = ModelConfig(model="scripted-target", base_url=base_url,
                         api_key=SecretStr("bench-key"), concurrency=slots)
    model = OpenAIModel("scripted-target", base_url=base_url, api_key="bench-key",
                        concurrency=concurrency)
    store = ResponseCache(folder / "cache.sqlite") if cache else None
    client = RoleClient(model, "target", Meter(), cache=store)
    settings = ExecutorConfig(kind="ray", address=os.environ.get("RAY_ADDRESS"),
                              workers=workers, concurrency=slots, num_cpus=0.0, retries=2)
    harness = ChatHarness(max_tokens=32)
    try:
        async with open_ray_executor(settings, harness, client, target_cfg=target) as executor:
            evaluator = Evaluator(harness, client, make_scorer("exact"), _Scores(), tasks,
                                  executor=executor)
            started = time.monotonic()
            done = await evaluator.rollouts(Skill(f"# Adding\n{GOOD_RULE}\n"), tasks)
            seconds = time.monotonic() - started
    finally:
        await model.aclose()
        if store is not None:
            store.close()
    return seconds, sum(1 for r in done if r.error is not None)


def measure_ray(latency_s: float, concurrency: int, workers: int, tasks: int, *,
                cache: bool = False) -> dict[str, Any]:
    """tasks, seconds, tasks_per_s and ratio (tasks_per_s / (concurrency / latency_s)) of one
    pass of `tasks` rollouts on `workers` Ray workers. Raises when any rollout failed: the
    figure would not be a throughput."""
    with tempfile.TemporaryDirectory(prefix="engine-ray-") as tmp:
        proc, base_url = start_scripted_server(Path(tmp), latency_s)
        try:
            seconds, failed = asyncio.run(_measure(base_url, Path(tmp), concurrency, workers,
                                                   tasks, cache))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    if failed:
        raise RuntimeError(f"{failed} of {tasks} rollouts failed on the Ray workers")
    rate = tasks / seconds
    limit = concurrency / latency_s if latency_s > 0 else float("inf")
    return {"tasks": tasks, "seconds": round(seconds, 2), "tasks_per_s": round(rate, 1),
            "ratio": round(rate / limit, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--cache", action="store_true")
    args = parser.parse_args()
    for workers in args.workers:
        row = measure_ray(args.latency, args.concurrency, workers, args.tasks, cache=args.cache)
        print(json.dumps({"workers": workers, "concurrency": args.concurrency,
                          "latency_s": args.latency, "cache": args.cache, **row}), flush=True)


if __name__ == "__main__":
    main()
