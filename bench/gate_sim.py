"""Whole-run simulation of the acceptance gates in ``skilltrain.gate``.

A gate is judged by what a run ships, so this script simulates whole runs rather than single
decisions, and drives the real gate classes through the same ``Evaluate`` interface the trainer
uses. Per rule it prints, over many simulated runs:

- gain: the mean true gain of the final skill over the starting skill, in points;
- P(worse): the probability that the final skill is truly worse than the starting one;
- harm/run: harmful candidates accepted per run;
- calls/run: target calls per run, counted as distinct new (skill, item, sample) evaluations,
  the starting skill's validation included once.

The model of a run (scenario ``reference``): n_val validation items with success probabilities
drawn from Beta(0.5, 0.5) scaled by 0.8; 40 steps; each step proposes one candidate whose true
mean differs from the incumbent's by d: 60% harmful (d uniform in -15..-3 points), 30% neutral
(d = 0, outcomes drawn afresh) and 10% helpful (d uniform in +3..+15 points). A positive shift
moves every item probability toward 1 by the same fraction, a negative one toward 0. Each
evaluation is one Bernoulli draw per (skill, item, sample), memoised. An accepted candidate becomes
the incumbent. Scenario ``near_det`` draws the probabilities from an unscaled Beta(0.2, 0.2), so
most items are nearly always solved or nearly always failed.

The same run seed gives every rule the same items, the same proposals and the same random draws
(common random numbers), so differences between rules are not sampling noise of the scenario.

Usage: ``python bench/gate_sim.py [--runs 400] [--scenario reference] [--n-val 50] [--quick]``.
The last line compares the default rule with ``strict`` in the reference scenario at n_val=50.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skilltrain.gate import DEFAULT_GATE, GATE_NAMES, make_gate  # noqa: E402

KINDS = ("harmful", "neutral", "helpful")


@dataclass(frozen=True)
class Scenario:
    """How item difficulty and candidate quality are drawn."""

    name: str
    beta: float
    scale: float
    description: str
    steps: int = 40
    p_harmful: float = 0.6
    p_neutral: float = 0.3
    shift_range: tuple[float, float] = (0.03, 0.15)


SCENARIOS = {
    "reference": Scenario("reference", 0.5, 0.8, "item p ~ 0.8 * Beta(0.5, 0.5)"),
    "near_det": Scenario("near_det", 0.2, 1.0, "item p ~ Beta(0.2, 0.2), near-deterministic"),
}


@dataclass(eq=False)
class SimSkill:
    """A simulated skill: an id (its 'hash') and its true per-item success probabilities."""

    id: int
    p: np.ndarray


def shifted(p: np.ndarray, d: float) -> np.ndarray:
    """Move every probability toward 1 (d > 0) or 0 (d < 0) so the mean moves by d (capped)."""
    mean = float(p.mean())
    if d > 0:
        return p + min(1.0, d / max(1e-12, 1 - mean)) * (1 - p)
    if d < 0:
        return p * (1 - min(1.0, -d / max(1e-12, mean)))
    return p.copy()


class SimTarget:
    """The ``Evaluate`` callable of a simulated run: Bernoulli draws, memoised per triple.

    Draws come from a generator seeded by (run seed, skill id, sample), so a triple has the same
    outcome whichever rule asks for it and in whatever order. ``calls`` counts distinct triples.
    """

    def __init__(self, seed: int, items: Sequence[str]) -> None:
        self._seed = seed
        self._index = {t: i for i, t in enumerate(items)}
        self._rows: dict[tuple[int, int], np.ndarray] = {}
        self._seen: set[tuple[int, str, int]] = set()

    @property
    def calls(self) -> int:
        return len(self._seen)

    async def __call__(self, skill: SimSkill, task_ids: Sequence[str], sample: int = 0
                       ) -> dict[str, float | None]:
        key = (skill.id, sample)
        if key not in self._rows:
            rng = np.random.default_rng([self._seed, skill.id, sample, 7])
            self._rows[key] = rng.random(len(self._index)) < skill.p
        row = self._rows[key]
        out: dict[str, float | None] = {}
        for t in task_ids:
            self._seen.add((skill.id, t, sample))
            out[t] = float(row[self._index[t]])
        return out


@dataclass
class RunResult:
    gain: float
    calls: int
    proposed: dict[str, int]
    accepted: dict[str, int]
    items_used: int


async def simulate_run(rule: str, options: dict, scenario: Scenario, n_val: int, seed: int
                       ) -> RunResult:
    """One training run: 40 proposals against a moving incumbent, decided by the gate."""
    gate = make_gate(rule, **options)
    rng = np.random.default_rng([seed, 1])
    p0 = scenario.scale * rng.beta(scenario.beta, scenario.beta, n_val)
    draws = rng.random(scenario.steps)
    sizes = rng.uniform(*scenario.shift_range, scenario.steps)
    items = [f"t{i}" for i in range(n_val)]
    target = SimTarget(seed, items)
    incumbent = SimSkill(0, p0)
    await target(incumbent, items, 0)  # the starting skill's validation, paid once
    proposed = dict.fromkeys(KINDS, 0)
    accepted = dict.fromkeys(KINDS, 0)
    items_used = 0
    for step in range(scenario.steps):
        if draws[step] < scenario.p_harmful:
            kind, d = "harmful", -sizes[step]
        elif draws[step] < scenario.p_harmful + scenario.p_neutral:
            kind, d = "neutral", 0.0
        else:
            kind, d = "helpful", sizes[step]
        candidate = SimSkill(step + 1, shifted(incumbent.p, d))
        decision = await gate.decide(candidate, incumbent, items, target)
        proposed[kind] += 1
        items_used += decision.items_used
        if decision.accepted:
            accepted[kind] += 1
            incumbent = candidate
    gain = float(incumbent.p.mean() - p0.mean())
    return RunResult(gain, target.calls, proposed, accepted, items_used)


def _run_block(args: tuple) -> list[RunResult]:
    rule, options, scenario, n_val, seeds = args

    async def block() -> list[RunResult]:
        return [await simulate_run(rule, options, scenario, n_val, s) for s in seeds]

    return asyncio.run(block())


@dataclass
class Summary:
    rule: str
    runs: int
    gain: float
    gain_se: float
    p_worse: float
    harmful_per_run: float
    accept_rate: dict[str, float] = field(default_factory=dict)
    calls: float = 0.0
    items_per_decision: float = 0.0


def summarise(rule: str, results: list[RunResult]) -> Summary:
    gains = np.array([r.gain for r in results]) * 100
    rate = {
        k: sum(r.accepted[k] for r in results) / max(1, sum(r.proposed[k] for r in results))
        for k in KINDS
    }
    decisions = sum(sum(r.proposed.values()) for r in results)
    return Summary(
        rule=rule, runs=len(results), gain=float(gains.mean()),
        gain_se=float(gains.std(ddof=1) / math.sqrt(len(gains))) if len(gains) > 1 else 0.0,
        p_worse=float((gains < 0).mean()),
        harmful_per_run=float(np.mean([r.accepted["harmful"] for r in results])),
        accept_rate=rate, calls=float(np.mean([r.calls for r in results])),
        items_per_decision=sum(r.items_used for r in results) / max(1, decisions),
    )


def table(rows: list[Summary]) -> str:
    head = ["rule", "gain", "±se", "P(worse)", "harm/run", "acc harm", "acc neut", "acc help",
            "calls/run", "items/dec"]
    body = [[
        s.rule, f"{s.gain:+.1f}", f"{s.gain_se:.1f}", f"{100 * s.p_worse:.1f}%",
        f"{s.harmful_per_run:.2f}", f"{100 * s.accept_rate['harmful']:.1f}%",
        f"{100 * s.accept_rate['neutral']:.1f}%", f"{100 * s.accept_rate['helpful']:.1f}%",
        f"{s.calls:,.0f}", f"{s.items_per_decision:.1f}",
    ] for s in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    rule_line = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule_line, *(line(r) for r in body)])


def parse_options(pairs: list[str]) -> dict[str, dict]:
    """``--option paired.alpha=0.25`` -> {"paired": {"alpha": 0.25}} (numbers and booleans)."""
    out: dict[str, dict] = {}
    for item in pairs:
        key, _, raw = item.partition("=")
        rule, _, name = key.partition(".")
        if not (rule and name and raw):
            raise SystemExit(f"--option wants RULE.NAME=VALUE, got {item!r}")
        value: object
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                value = float(raw)
        out.setdefault(rule, {})[name] = value
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=400, help="simulated runs per configuration")
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                    help="scenario(s) to run (default: all)")
    ap.add_argument("--n-val", type=int, action="append", help="validation sizes (default: "
                    "20, 50, 200)")
    ap.add_argument("--rules", nargs="+", default=list(GATE_NAMES), choices=GATE_NAMES)
    ap.add_argument("--option", action="append", default=[], help="RULE.NAME=VALUE")
    ap.add_argument("--quick", action="store_true",
                    help="100 runs, reference scenario at n_val=50 unless chosen otherwise")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    runs = 100 if args.quick and args.runs == 400 else args.runs
    scenarios = args.scenario or (["reference"] if args.quick else list(SCENARIOS))
    n_vals = args.n_val or ([50] if args.quick else [20, 50, 200])
    options = parse_options(args.option)
    rules = list(dict.fromkeys(args.rules))
    configs = [(s, n) for s in scenarios for n in n_vals]
    if ("reference", 50) not in configs:
        configs.append(("reference", 50))

    started = time.perf_counter()
    seeds = [args.seed + i for i in range(runs)]
    block = max(1, math.ceil(runs / (4 * max(1, args.workers))))
    jobs = []
    for scen, n in configs:
        for rule in rules if (scen, n) != ("reference", 50) else dict.fromkeys(
                [*rules, "strict", DEFAULT_GATE]):
            for i in range(0, runs, block):
                jobs.append((rule, options.get(rule, {}), SCENARIOS[scen], n, seeds[i:i + block]))
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        blocks = list(pool.map(_run_block, jobs))
    results: dict[tuple[str, int, str], list[RunResult]] = {}
    for job, out in zip(jobs, blocks):
        results.setdefault((job[2].name, job[3], job[0]), []).extend(out)

    print(f"gate_sim: {runs} runs per row, seed {args.seed}, default rule {DEFAULT_GATE!r}"
          + (f", options {options}" if options else ""))
    summaries: dict[tuple[str, int, str], Summary] = {}
    for scen, n in configs:
        rows = [summarise(rule, results[(scen, n, rule)])
                for rule in dict.fromkeys([*rules, "strict", DEFAULT_GATE])
                if (scen, n, rule) in results]
        for s in rows:
            summaries[(scen, n, s.rule)] = s
        if (scen, n) in [(s, m) for s in scenarios for m in n_vals] or rows:
            print(f"\nscenario {scen} ({SCENARIOS[scen].description}), n_val={n}, "
                  f"{SCENARIOS[scen].steps} steps")
            print(table(rows))
    print(f"\nelapsed {time.perf_counter() - started:.0f}s on {args.workers} worker(s)")
    diffs = 100 * (np.array([r.gain for r in results[("reference", 50, DEFAULT_GATE)]])
                   - np.array([r.gain for r in results[("reference", 50, "strict")]]))
    print(f"reference n_val=50, {DEFAULT_GATE} minus strict on the same {runs} runs: gain "
          f"{diffs.mean():+.2f} ± {diffs.std(ddof=1) / math.sqrt(len(diffs)):.2f} (se)")
    ref, base = summaries[("reference", 50, DEFAULT_GATE)], summaries[("reference", 50, "strict")]
    ratio = ref.p_worse / base.p_worse if base.p_worse > 0 else float("nan")
    print(f"gain_vs_strict={ref.gain - base.gain:+.2f} regress_ratio={ratio:.2f} "
          f"calls_ratio={base.calls / ref.calls:.2f}")


if __name__ == "__main__":
    main()
