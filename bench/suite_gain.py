"""What training with the default settings wins on each built-in chat suite, against three
untrained baselines, over several seeds.

For every suite and seed it trains exactly as `skilltrain train --suite SUITE --target T
--optimizer O --seed N --out DIR` does with no other flag (package defaults for everything
else: epochs, batch sizes, edit operations, optimizer reply budget), and scores on that run's
own test split:

  test_start       the suite's starting skill (`suite.skill`)
  test_examples8   the starting skill with the first eight items of the run's train split
                   pasted under it ("## Examples", then "Input: ... / Answer: ..." per item)
  test_reference   the hand-written reference skill (house / gym REFERENCE_SKILLS), `-` if none
  test_trained     the trained best skill (the run's own `summary["test"]["best"]`)
  headroom         (trained - start) / (reference - start), where reference > start

with the steps accepted / rejected / screened / skipped, target and optimizer calls and the
wall seconds of each training run. `run_start` is the run's own test score of the starting
skill, printed to check that the bench scored the same items (it should equal test_start,
up to the local server's rare temperature-0 wobble). After the per-seed rows, each suite gets
the mean of every column, a 95% Student-t interval for the test gain (trained - start) over
seeds (the mean only with one seed) and the mean headroom share; the end is one table across
suites (step counts, calls and wall seconds summed over seeds).

Splits: `--seed N` on the command line sets the run's seed (batch order, validation order) but
not `data.seed`, which stays 0, so a suite's splits are `suite.splits(0)` for every seed and the
baselines are scored once per suite. `--resplit` also sets `data.seed` to the seed (as a config
file with `data: {seed: N}` would), so that each seed draws its own split and its own baselines.

The baselines go through `skilltrain.aevaluate` with the run's harness and target settings, on
one embedded target server that the bench starts once and keeps for all suites (its start-up
time is printed); each training run starts its own servers, as the CLI does.

    python bench/suite_gain.py                                  # every chat suite, 3 seeds
    python bench/suite_gain.py --suites house-date,gym-arithmetic --seeds 5 --out runs/gain
    python bench/suite_gain.py --suites house-tiny --seeds 1 --max-steps 1 --epochs 1  # smoke

A full run (seven suites x three seeds of default-length training on the local models) takes
hours on a few CPU cores: measure it; every row prints its wall seconds as soon as it is known.
With `--out`, a run folder that already exists is resumed (as `skilltrain train --out` does),
so a rerun into the same folder reports the earlier runs instead of training again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, print_table, summary_row, train_settings, train_suite  # noqa: E402

from skilltrain import Trainer  # noqa: E402
from skilltrain.api import aevaluate  # noqa: E402
from skilltrain.config import TrainConfig  # noqa: E402
from skilltrain.data import Task  # noqa: E402
from skilltrain.models.registry import open_model  # noqa: E402
from skilltrain.run_setup import build_harness  # noqa: E402
from skilltrain.stats import t_interval as interval  # noqa: E402
from skilltrain.suites import Suite, get_suite, gym, house, list_suites  # noqa: E402

REFERENCE = {**house.REFERENCE_SKILLS, **gym.REFERENCE_SKILLS}

SEED_COLUMNS = ["seed", "test_start", "test_examples8", "test_reference", "test_trained",
                "run_start", "gain", "headroom", "accepted", "rejected", "screened", "skipped",
                "target_calls", "optimizer_calls", "wall_s"]
SUMMED = ("accepted", "rejected", "screened", "skipped", "target_calls", "optimizer_calls",
          "wall_s")


def examples_skill(skill: str, train: list[Task], n: int = 8) -> str:
    """The skill with the first `n` train items pasted under it as worked examples."""
    block = "".join(f"Input: {t.input}\nAnswer: {t.answer}\n\n" for t in train[:n])
    return skill.rstrip("\n") + "\n\n## Examples\n" + block.rstrip("\n") + "\n"


def headroom(start: float | None, trained: float | None, reference: float | None
             ) -> float | None:
    if None in (start, trained, reference) or reference <= start:  # type: ignore[operator]
        return None
    return (trained - start) / (reference - start)  # type: ignore[operator]


def mean(values: list[Any]) -> float | None:
    xs = [v for v in values if isinstance(v, (int, float))]
    return sum(xs) / len(xs) if xs else None


def signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"


class Rows:
    """Fixed-width rows printed (and flushed) one at a time, as each becomes known."""

    def __init__(self, columns: list[str], width: int = 8):
        self.columns = columns
        self.widths = {c: max(len(c), width) for c in columns}

    def header(self) -> None:
        print("  ".join(c.ljust(self.widths[c]) for c in self.columns), flush=True)

    def row(self, values: dict[str, Any]) -> None:
        cells = []
        for c in self.columns:
            v = values.get(c)
            text = signed(v) if c == "gain" and isinstance(v, float) else fmt(v)
            cells.append(text.ljust(self.widths[c]))
        print("  ".join(cells), flush=True)


class Baselines:
    """Scores skills on the target the runs use: the run's harness and call settings, and one
    embedded server kept for the whole bench when the target is `local:*`."""

    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.servers: dict[str, object] = {}

    def _server(self, cfg: TrainConfig) -> None:
        spec = cfg.target.model
        if not spec.startswith("local:"):
            return  # open_model connects to a remote endpoint per evaluation: cheap
        name = spec.split(":", 1)[1]
        if name in self.servers:
            return
        from skilltrain.local.server import LocalServer

        started = time.monotonic()
        self.servers[name] = self.stack.enter_context(LocalServer(name))
        print(f"baseline server {spec} started in {time.monotonic() - started:.1f} s "
              "(kept for all suites)", flush=True)

    def score(self, cfg: TrainConfig, suite: Suite, skills: dict[str, str], tasks: list[Task]
              ) -> dict[str, dict]:
        self._server(cfg)
        return asyncio.run(self._score(cfg, suite, skills, tasks))

    async def _score(self, cfg: TrainConfig, suite: Suite, skills: dict[str, str],
                     tasks: list[Task]) -> dict[str, dict]:
        async with AsyncExitStack() as stack:
            model = await open_model(cfg.target, stack, "target", self.servers)
            harness = build_harness(cfg)
            return {name: await aevaluate(text, tasks, target=model,
                                          scorer=suite.scorer, harness=harness)
                    for name, text in skills.items()}


def run_baselines(baselines: Baselines, cfg: TrainConfig, suite: Suite) -> dict[str, Any]:
    splits = suite.splits(cfg.data.seed)  # what run_setup.resolve_inputs gives a suite run
    skills = {"test_start": suite.skill,
              "test_examples8": examples_skill(suite.skill, splits.train)}
    if suite.name in REFERENCE:
        skills["test_reference"] = REFERENCE[suite.name]
    started = time.monotonic()
    results = baselines.score(cfg, suite, skills, splits.test)
    out: dict[str, Any] = {name: r["score"] for name, r in results.items()}
    out.setdefault("test_reference", None)
    failures = sum(r["infra_failures"] for r in results.values())
    print(f"{suite.name} baselines (data seed {cfg.data.seed}; train {len(splits.train)}, "
          f"val {len(splits.val)}, test {len(splits.test)}): "
          + "  ".join(f"{k} {fmt(v)}" for k, v in out.items())
          + f"  ({len(skills)} evaluations in {time.monotonic() - started:.1f} s"
          + (f", {failures} infrastructure failures" if failures else "") + ")", flush=True)
    return out


def suite_summary(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    gains = [r["gain"] for r in rows if r["gain"] is not None]
    shares = [r["headroom"] for r in rows if r["headroom"] is not None]
    ci = interval(gains)
    out: dict[str, Any] = {"suite": name, "seeds": len(rows)}
    for c in ("test_start", "test_examples8", "test_reference", "test_trained"):
        out[c] = mean([r[c] for r in rows])
    out["gain"] = signed(mean(gains))
    out["gain_95ci"] = "-" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"
    out["headroom"] = mean(shares)
    for c in SUMMED:
        out[c] = round(sum(r[c] for r in rows), 1) if c == "wall_s" else sum(r[c] for r in rows)
    print(f"{name}: gain {out['gain']}"
          + (f" (95% CI {out['gain_95ci']}, t over {len(gains)} seeds)" if ci else
             f" (mean of {len(gains)} seed{'s' if len(gains) != 1 else ''})")
          + f", headroom share {fmt(out['headroom'])}"
          + (f" (mean of {len(shares)} seeds where reference > start)" if shares else
             " (no reference above the start)"), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--suites", default=",".join(
        s.name for s in list_suites() if s.name != "spreadsheet"),
        help="comma-separated (default: every chat suite; spreadsheet needs an agent harness)")
    parser.add_argument("--target", default="local:0.5b")
    parser.add_argument("--optimizer", default="local:1.5b")
    parser.add_argument("--seeds", type=int, default=3, help="runs per suite (default: 3)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are FIRST .. FIRST+SEEDS-1 (default: 0)")
    parser.add_argument("--resplit", action="store_true",
                        help="also set data.seed to the seed: each seed its own split (the CLI "
                             "flags alone keep data.seed 0)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="passed as train.max_steps (default: no cap)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passed as train.epochs (default: the package default)")
    parser.add_argument("--out", default=None,
                        help="keep run folders here (SUITE/seedN); default: a temporary folder")
    parser.add_argument("--progress", action="store_true",
                        help="print each run's step results to stderr")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    suites = [get_suite(name) for name in args.suites.split(",")]
    root = Path(args.out or tempfile.mkdtemp(prefix="suite_gain-"))
    print(f"runs in {root}", flush=True)
    progress = []
    if args.progress:
        from skilltrain.console import Progress

        progress = [Progress(quiet=True)]
    totals = []
    with contextlib.ExitStack() as stack:
        baselines = Baselines(stack)
        for suite in suites:
            rows: list[dict[str, Any]] = []
            scored: dict[int, dict[str, Any]] = {}
            printer = Rows(SEED_COLUMNS)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                overrides: dict[str, Any] = {"train.max_steps": args.max_steps,
                                             "train.epochs": args.epochs}
                if args.resplit:
                    overrides["data.seed"] = seed
                out = root / suite.name / f"seed{seed}"
                kw = {"target": args.target, "optimizer": args.optimizer, "seed": seed,
                      "overrides": overrides}
                cfg = Trainer(None, **train_settings(suite.name, out, **kw)).config
                if cfg.data.seed not in scored:
                    scored[cfg.data.seed] = run_baselines(baselines, cfg, suite)
                    printer.header()
                base = scored[cfg.data.seed]
                trainer, wall_s = train_suite(suite.name, out, callbacks=progress, **kw)
                s = summary_row(suite.name, trainer.summary_, wall_s)
                trained = s["test_best"]
                row = {"seed": seed, **base, "test_trained": trained,
                       "run_start": s["test_initial"],
                       "gain": None if trained is None or base["test_start"] is None
                       else trained - base["test_start"],
                       "headroom": headroom(base["test_start"], trained, base["test_reference"]),
                       **{c: s[c] for c in SUMMED if c != "wall_s"}, "wall_s": wall_s}
                rows.append(row)
                printer.row(row)
                if trainer.summary_.get("stopped"):
                    print(f"  (seed {seed} stopped early: {trainer.summary_['stopped']})",
                          flush=True)
            means = {c: mean([r[c] for r in rows]) for c in SEED_COLUMNS if c != "seed"}
            printer.row({"seed": "mean", **means})
            totals.append(suite_summary(suite.name, rows))
            print(flush=True)
    print("across suites (test scores and headroom: means over seeds; steps, calls, wall_s: "
          "sums over seeds)", flush=True)
    print_table(totals, ["suite", "seeds", "test_start", "test_examples8", "test_reference",
                         "test_trained", "gain", "gain_95ci", "headroom", "accepted",
                         "rejected", "screened", "target_calls", "optimizer_calls", "wall_s"])
    print(f"runs in {root}", flush=True)


if __name__ == "__main__":
    main()
