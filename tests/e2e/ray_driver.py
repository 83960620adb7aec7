"""A small training through the Python API with a chosen executor and the DyingHarness, against
the scripted server: what the Ray tests run in a process of their own (Ray reads some of its
settings when it is imported, and workers import dying_harness from this script's folder).

Run: python tests/e2e/ray_driver.py OUT --base-url URL --executor local|ray [--address A]
         [--marker PATH [--always] [--only TASK_ID]]
         [--workers N --concurrency N --retries N] [--no-attribution]
The key comes from OPENAI_API_KEY; the summary is OUT/summary.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for scripted.py

from dying_harness import DyingHarness  # noqa: E402
from scripted import make_tasks  # noqa: E402

from skilltrain import Trainer  # noqa: E402

SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--address")
    parser.add_argument("--marker", default="/nonexistent/marker")
    parser.add_argument("--always", action="store_true")
    parser.add_argument("--only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--no-attribution", action="store_true")
    args = parser.parse_args()
    config = {
        "target": {"model": "openai:scripted-target", "base_url": args.base_url},
        "optimizer": {"model": "openai:scripted-opt", "base_url": args.base_url},
        "scorer": "exact", "gate": {"rule": "strict"}, "out": args.out,
        "train": {"epochs": 1, "batch_size": 6, "lr": 2, "proposals": 0, "screen": False,
                  "demonstrations": False, "attribution": not args.no_attribution},
        "executor": {"kind": args.executor, "address": args.address, "workers": args.workers,
                     "concurrency": args.concurrency, "retries": args.retries},
    }
    harness = DyingHarness(args.marker, once=not args.always, only=args.only)
    Trainer(config, harness=harness).fit(make_tasks(24), SKILL)


if __name__ == "__main__":
    main()
