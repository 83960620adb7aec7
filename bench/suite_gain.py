"""For each built-in suite: train with the local models and print test accuracy of the initial
and the best skill, with target and optimizer calls and wall time.

    python bench/suite_gain.py                       # every chat suite, demo-sized runs
    python bench/suite_gain.py --suites house-date --steps 3 --target local:0.5b
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, run_suite  # noqa: E402

from skilltrain.config import small_optimizer_settings  # noqa: E402
from skilltrain.suites import list_suites  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(
        s.name for s in list_suites() if s.name != "spreadsheet"),
        help="comma-separated (default: every chat suite; spreadsheet needs an agent harness)")
    parser.add_argument("--target", default="local:0.5b")
    parser.add_argument("--optimizer", default="local:1.5b")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--out", default=None, help="keep run folders here")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="suite_gain-"))
    rows = []
    for suite in args.suites.split(","):
        overrides = {**small_optimizer_settings(), "train.epochs": 1,
                     "train.batch_size": args.batch_size,
                     "train.minibatch_size": args.batch_size, "train.max_steps": args.steps}
        rows.append(run_suite(suite, root / suite, target=args.target,
                              optimizer=args.optimizer, overrides=overrides))
        print_table(rows[-1:], list(rows[-1]))
        print(flush=True)
    print(f"runs in {root}")
    print_table(rows, ["suite", "test_initial", "test_best", "val_initial", "val_best",
                       "accepted", "rejected", "skipped", "target_calls", "optimizer_calls",
                       "wall_s"])


if __name__ == "__main__":
    main()
