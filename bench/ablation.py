"""The full method (the default settings) against each mechanism removed, on built-in suites,
with the local models or any model given. Prints test accuracy, accepted steps and calls per
variant; `paper_loop` is the paper's step without our search, screening and demonstrations.

    python bench/ablation.py --suites house-date --epochs 2 --limit 40   # 2 steps per epoch
    python bench/ablation.py --target openai:gpt-4o-mini --optimizer openai:gpt-4o
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, run_suite  # noqa: E402

VARIANTS = {
    "full": {},
    "no_slow_update": {"train.slow_update": "off"},
    "no_meta_skill": {"train.meta_skill": False},
    "no_slow_or_meta": {"train.slow_update": "off", "train.meta_skill": False},
    "no_rejected_buffer": {"train.rejected_buffer": 0},
    "no_edit_cap": {"train.lr": 50, "train.lr_min": 50},
    "strict_gate": {"gate.rule": "strict"},
    "appendix_on": {"train.appendix": True},
    "no_rule_proposals": {"train.proposals": 0},
    "no_screening": {"train.screen": False},
    "no_demonstrations": {"train.demonstrations": False},
    "paper_loop": {"train.proposals": 0, "train.screen": False, "train.demonstrations": False,
                   "train.answer_form": False,
                   "train.analyse_successes": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default="house-date")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--target", default="local:0.5b")
    parser.add_argument("--optimizer", default="local:1.5b")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--limit", type=int, default=40, help="tasks per split")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="ablation-"))
    rows = []
    for suite in args.suites.split(","):
        for name in args.variants.split(","):
            overrides = {"train.epochs": args.epochs, "train.batch_size": args.batch_size,
                         "train.slow_update_samples": 10, "data.limit": args.limit,
                         **VARIANTS[name]}
            row = run_suite(suite, root / f"{suite}-{name}", target=args.target,
                            optimizer=args.optimizer, overrides=overrides)
            rows.append({"variant": name, **row})
            print_table(rows[-1:], list(rows[-1]), )
            print(flush=True)
    print(f"runs in {root}")
    print_table(rows, ["suite", "variant", "test_initial", "test_best", "accepted", "rejected",
                       "target_calls", "optimizer_calls", "wall_s"])


if __name__ == "__main__":
    main()
