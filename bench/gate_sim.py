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

Screening (``--screen K``, off by default): each run also draws a pool of ``--screen-pool`` (60)
train items with their own base probabilities (same Beta and scale as validation), and a skill
carries its probabilities on both; a candidate's shift d moves both by the same ``shifted`` rule,
so a candidate's train-batch score is informative about its validation quality but noisy. Each
step takes the next ``--screen-batch`` B (20) train items of the pool, in order, cycling, and
draws K proposals independently from the kind mix (proposal 1 is the unscreened run's proposal).
The incumbent's outcomes on the batch are the step's own rollouts, paid by the forward pass with
or without screening, so they cost nothing here; each proposal's outcomes on the batch are
*screening calls*. Proposals whose batch sum is not strictly above the incumbent's are screened
out (rejected without a validation pass); the one with the largest margin goes to the gate. Train
outcomes come from a second ``SimTarget`` (its own salt, sample index = step, so a revisited item
gets a fresh rollout), so they are independent of validation and counted apart. With screening,
the table adds ``gated`` (the share of proposals that reached the gate), ``gate calls``
(validation, as ``calls/run`` above), ``screen calls`` and ``total calls``; ``acc *`` is over
all proposals, ``items/dec`` over gate decisions; a line under the table gives the share of each
kind of proposal that passed the screen (default rule). Two options, off by default, mirror
``skilltrain.screening`` and the trainer: ``--screen-race`` scores the first half of the
screened items first and stops a candidate not ahead there; ``--screen-keep FAILS WINS`` screens
only the first FAILS batch items the incumbent failed and WINS it solved (the trainer: 20 and 10
of a batch of 40). That selection conditions on the incumbent's own noisy outcomes, so it tilts
the screen toward the candidate. The model is otherwise kind to screening: proposals are
independent of the batch, whereas a real proposer writes its candidate from that batch's
failures, which biases its batch score upward; and train and validation items come from the
same distribution.

The same run seed gives every rule the same items, the same proposals and the same random draws
(common random numbers), so differences between rules are not sampling noise of the scenario.

Usage: ``python bench/gate_sim.py [--runs 400] [--scenario reference] [--n-val 50] [--quick]
[--screen K ...] [--screen-batch 20] [--screen-pool 60] [--screen-race]
[--screen-keep FAILS WINS] [--option RULE.NAME=VALUE ...]``.
``--screen`` repeats (``--screen 1 --screen 3``); every K adds a table per configuration. The
last lines compare the default rule with ``strict`` in the reference scenario at n_val=50: first
both unscreened (``gain_vs_strict=... regress_ratio=... calls_ratio=...``); then, per K, the
default rule *with* screening against ``strict`` *without* it (the paper's loop: one proposal per
step, each gated on the whole split), once counting only gate (validation) calls
(``gate-only:``) and once counting validation plus screening calls (``total:``). ``total`` is the
count of target calls a run really makes; ``gate-only`` ignores the candidates' batch rollouts.
With K > 1 the screened run also makes K times the proposer calls (not target calls, not
counted) and its gain includes the effect of searching K proposals; the ``strict`` row of the
same screened table shows how much of the difference is the search rather than the rule.
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
    """A simulated skill: an id (its 'hash') and its true per-item success probabilities.

    ``p`` is over the validation items; ``q``, when screening is modelled, over the train pool.
    """

    id: int
    p: np.ndarray
    q: np.ndarray | None = None


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

    Draws come from a generator seeded by (run seed, skill id, sample, salt), so a triple has the
    same outcome whichever rule asks for it and in whatever order. ``calls`` counts distinct
    triples. The validation target uses salt 7 and the skill's ``p``; the train-batch target of
    the screening stage is a separate instance (salt 8, the skill's ``q``), so its draws are
    independent of validation and its calls are counted apart.
    """

    def __init__(self, seed: int, items: Sequence[str], salt: int = 7, attr: str = "p") -> None:
        self._seed = seed
        self._salt = salt
        self._attr = attr
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
            rng = np.random.default_rng([self._seed, skill.id, sample, self._salt])
            self._rows[key] = rng.random(len(self._index)) < getattr(skill, self._attr)
        row = self._rows[key]
        out: dict[str, float | None] = {}
        for t in task_ids:
            self._seen.add((skill.id, t, sample))
            out[t] = float(row[self._index[t]])
        return out


@dataclass(frozen=True)
class Screening:
    """The screening stage: ``k`` proposals per step, each scored on a train batch of ``batch``
    items taken in order from a pool of ``pool`` items; ``k = 0`` turns screening off.

    Two options mirror ``skilltrain.screening`` and the trainer, off by default: ``keep =
    (fails, wins)`` screens only the first ``fails`` batch items the incumbent failed and the
    first ``wins`` it solved (the trainer keeps 20 and 10 of its batch); ``race`` scores the
    first half of the screened items first and stops a candidate that is not ahead there.
    """

    k: int = 0
    batch: int = 20
    pool: int = 60
    race: bool = False
    keep: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError("screen K must be >= 0")
        if self.k and not 1 <= self.batch <= self.pool:
            raise ValueError("screen batch must be in 1..pool")
        if self.keep is not None and min(self.keep) < 0:
            raise ValueError("screen keep counts must be >= 0")

    def describe(self) -> str:
        keep = f" keep={self.keep[0]}/{self.keep[1]}" if self.keep else ""
        return f"K={self.k} B={self.batch}{keep}{' race' if self.race else ''}"


NO_SCREEN = Screening()


@dataclass
class RunResult:
    gain: float
    calls: int
    proposed: dict[str, int]
    accepted: dict[str, int]
    items_used: int
    screen_calls: int = 0
    gated: int = 0
    """Gate (validation) decisions; without screening, one per step."""
    passed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    """Proposals of each kind whose batch score beat the incumbent's (screening only)."""


def _proposal(scenario: Scenario, draw: float, size: float) -> tuple[str, float]:
    if draw < scenario.p_harmful:
        return "harmful", -size
    if draw < scenario.p_harmful + scenario.p_neutral:
        return "neutral", 0.0
    return "helpful", size


async def simulate_run(rule: str, options: dict, scenario: Scenario, n_val: int, seed: int,
                       screen: Screening = NO_SCREEN) -> RunResult:
    """One training run: 40 steps against a moving incumbent, decided by the gate.

    Without screening each step gates its one proposal. With screening each step draws
    ``screen.k`` proposals (the first is the same draw as without screening), scores each on the
    step's train batch against the incumbent's outcomes there, and gates only the best one whose
    batch score is strictly above the incumbent's; if none is, the step accepts nothing.
    """
    gate = make_gate(rule, **options)
    rng = np.random.default_rng([seed, 1])
    p0 = scenario.scale * rng.beta(scenario.beta, scenario.beta, n_val)
    draws = rng.random(scenario.steps)
    sizes = rng.uniform(*scenario.shift_range, scenario.steps)
    items = [f"t{i}" for i in range(n_val)]
    target = SimTarget(seed, items)
    incumbent = SimSkill(0, p0)
    await target(incumbent, items, 0)  # the starting skill's validation, paid once
    proposals = [[_proposal(scenario, draws[s], sizes[s])] for s in range(scenario.steps)]
    train_items: list[str] = []
    trainer: SimTarget | None = None
    if screen.k:
        # Separate streams, so the validation items and first proposals stay those of the
        # unscreened run, and proposal j is the same draw for every K > j.
        incumbent.q = scenario.scale * np.random.default_rng([seed, 2]).beta(
            scenario.beta, scenario.beta, screen.pool)
        train_items = [f"r{i}" for i in range(screen.pool)]
        trainer = SimTarget(seed, train_items, salt=8, attr="q")
        for j in range(1, screen.k):
            xrng = np.random.default_rng([seed, 3, j])
            xdraws = xrng.random(scenario.steps)
            xsizes = xrng.uniform(*scenario.shift_range, scenario.steps)
            for s in range(scenario.steps):
                proposals[s].append(_proposal(scenario, xdraws[s], xsizes[s]))
    proposed = dict.fromkeys(KINDS, 0)
    accepted = dict.fromkeys(KINDS, 0)
    passed = dict.fromkeys(KINDS, 0)
    items_used = gated = free = 0
    for step in range(scenario.steps):
        mine = proposals[step][:max(1, screen.k)]
        candidates = [
            SimSkill(1 + step + j * scenario.steps, shifted(incumbent.p, d),
                     None if incumbent.q is None else shifted(incumbent.q, d))
            for j, (_, d) in enumerate(mine)
        ]
        for kind, _ in mine:
            proposed[kind] += 1
        chosen = 0
        if trainer is not None:
            batch = [train_items[(step * screen.batch + i) % screen.pool]
                     for i in range(screen.batch)]
            before = trainer.calls
            # The incumbent's rollouts on the batch: paid by the step's forward pass, free here.
            # Sample index = step, so a revisited item gets a fresh rollout.
            mine_out = await trainer(incumbent, batch, step)
            free += trainer.calls - before
            if screen.keep is not None:
                fails = [t for t in batch if mine_out[t] < 1][:screen.keep[0]]
                wins = [t for t in batch if mine_out[t] >= 1][:screen.keep[1]]
                kept = set(fails + wins)
                batch = [t for t in batch if t in kept]
            half = (len(batch) + 1) // 2 if screen.race else len(batch)
            best_margin = 0.0
            chosen = -1
            for j, cand in enumerate(candidates):
                margin = 0.0
                for part in (batch[:half], batch[half:]):
                    if part:
                        got = await trainer(cand, part, step)
                        margin += sum(got[t] - mine_out[t] for t in part)
                    if margin <= 0:
                        break  # racing: not ahead after the first half (no-op otherwise)
                if margin > 0:
                    passed[mine[j][0]] += 1
                if margin > best_margin:
                    chosen, best_margin = j, margin
            if chosen < 0:
                continue  # every proposal screened out: rejected without a validation pass
        kind = mine[chosen][0]
        candidate = candidates[chosen]
        decision = await gate.decide(candidate, incumbent, items, target)
        gated += 1
        items_used += decision.items_used
        if decision.accepted:
            accepted[kind] += 1
            incumbent = candidate
    gain = float(incumbent.p.mean() - p0.mean())
    screen_calls = 0 if trainer is None else trainer.calls - free
    return RunResult(gain, target.calls, proposed, accepted, items_used, screen_calls, gated,
                     passed)


def _run_block(args: tuple) -> list[RunResult]:
    rule, options, scenario, n_val, screen, seeds = args

    async def block() -> list[RunResult]:
        return [await simulate_run(rule, options, scenario, n_val, s, screen) for s in seeds]

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
    screen_calls: float = 0.0
    gated: float = 0.0
    """Share of proposals that reached the gate."""
    pass_rate: dict[str, float] = field(default_factory=dict)
    """Share of each kind of proposal that passed the screen."""

    @property
    def total_calls(self) -> float:
        return self.calls + self.screen_calls


def summarise(rule: str, results: list[RunResult]) -> Summary:
    gains = np.array([r.gain for r in results]) * 100
    rate = {
        k: sum(r.accepted[k] for r in results) / max(1, sum(r.proposed[k] for r in results))
        for k in KINDS
    }
    proposals = sum(sum(r.proposed.values()) for r in results)
    decisions = sum(r.gated for r in results)
    return Summary(
        rule=rule, runs=len(results), gain=float(gains.mean()),
        gain_se=float(gains.std(ddof=1) / math.sqrt(len(gains))) if len(gains) > 1 else 0.0,
        p_worse=float((gains < 0).mean()),
        harmful_per_run=float(np.mean([r.accepted["harmful"] for r in results])),
        accept_rate=rate, calls=float(np.mean([r.calls for r in results])),
        items_per_decision=sum(r.items_used for r in results) / max(1, decisions),
        screen_calls=float(np.mean([r.screen_calls for r in results])),
        pass_rate={k: sum(r.passed[k] for r in results)
                   / max(1, sum(r.proposed[k] for r in results)) for k in KINDS},
        gated=decisions / max(1, proposals),
    )


def table(rows: list[Summary], screened: bool = False) -> str:
    """Without screening, the original columns; with it, gated share and the three call counts.

    ``acc *`` is over all proposals (a screened-out one counts as rejected); ``items/dec`` is per
    gate decision.
    """
    head = ["rule", "gain", "±se", "P(worse)", "harm/run", "acc harm", "acc neut", "acc help"]
    head += (["gated", "gate calls", "screen calls", "total calls"] if screened
             else ["calls/run"])
    head += ["items/dec"]
    body = []
    for s in rows:
        cells = [
            s.rule, f"{s.gain:+.1f}", f"{s.gain_se:.1f}", f"{100 * s.p_worse:.1f}%",
            f"{s.harmful_per_run:.2f}", f"{100 * s.accept_rate['harmful']:.1f}%",
            f"{100 * s.accept_rate['neutral']:.1f}%", f"{100 * s.accept_rate['helpful']:.1f}%",
        ]
        if screened:
            cells += [f"{100 * s.gated:.0f}%", f"{s.calls:,.0f}", f"{s.screen_calls:,.0f}",
                      f"{s.total_calls:,.0f}"]
        else:
            cells += [f"{s.calls:,.0f}"]
        body.append([*cells, f"{s.items_per_decision:.1f}"])
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


def _compare(label: str, results: dict, summaries: dict, k: int, runs: int) -> None:
    """Default rule at screening K (0 = none) against ``strict`` without screening."""
    ref, base = summaries[("reference", 50, DEFAULT_GATE, k)], summaries[("reference", 50,
                                                                          "strict", 0)]
    diffs = 100 * (np.array([r.gain for r in results[("reference", 50, DEFAULT_GATE, k)]])
                   - np.array([r.gain for r in results[("reference", 50, "strict", 0)]]))
    ratio = ref.p_worse / base.p_worse if base.p_worse > 0 else float("nan")
    if not k:
        print(f"reference n_val=50, {DEFAULT_GATE} minus strict on the same {runs} runs: gain "
              f"{diffs.mean():+.2f} ± {diffs.std(ddof=1) / math.sqrt(len(diffs)):.2f} (se)")
        print(f"gain_vs_strict={ref.gain - base.gain:+.2f} regress_ratio={ratio:.2f} "
              f"calls_ratio={base.calls / ref.calls:.2f}")
        return
    print(f"{label}, reference n_val=50, {DEFAULT_GATE} with screening minus strict without, "
          f"same {runs} runs: gain {diffs.mean():+.2f} ± "
          f"{diffs.std(ddof=1) / math.sqrt(len(diffs)):.2f} (se)")
    for name, calls in (("gate-only", ref.calls), ("total", ref.total_calls)):
        print(f"{label} {name + ':':11} gain_vs_strict={ref.gain - base.gain:+.2f} "
              f"regress_ratio={ratio:.2f} calls_ratio={base.calls / calls:.2f}")


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
    ap.add_argument("--screen", type=int, action="append", default=[], metavar="K",
                    help="also simulate screening with K proposals per step (repeatable; "
                    "0 = no screening, the default)")
    ap.add_argument("--screen-batch", type=int, default=20, metavar="B",
                    help="train items per step's batch for screening (default 20)")
    ap.add_argument("--screen-pool", type=int, default=60,
                    help="train pool size, cycled through in order (default 60)")
    ap.add_argument("--screen-race", action="store_true",
                    help="as skilltrain.screening: stop a candidate not ahead after half the "
                    "screened items")
    ap.add_argument("--screen-keep", type=int, nargs=2, metavar=("FAILS", "WINS"),
                    help="as the trainer: screen only the first FAILS batch items the "
                    "incumbent failed and WINS it solved (the trainer: 20 10)")
    args = ap.parse_args(argv)
    runs = 100 if args.quick and args.runs == 400 else args.runs
    scenarios = args.scenario or (["reference"] if args.quick else list(SCENARIOS))
    n_vals = args.n_val or ([50] if args.quick else [20, 50, 200])
    options = parse_options(args.option)
    rules = list(dict.fromkeys(args.rules))
    ks = sorted({k for k in args.screen if k})
    screens = {0: NO_SCREEN}
    try:
        for k in ks:
            screens[k] = Screening(k, args.screen_batch, args.screen_pool, args.screen_race,
                                   tuple(args.screen_keep) if args.screen_keep else None)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    configs = [(s, n) for s in scenarios for n in n_vals]
    if ("reference", 50) not in configs:
        configs.append(("reference", 50))

    started = time.perf_counter()
    seeds = [args.seed + i for i in range(runs)]
    block = max(1, math.ceil(runs / (4 * max(1, args.workers))))
    jobs = []
    for screen in screens.values():
        for scen, n in configs:
            for rule in rules if (scen, n) != ("reference", 50) else dict.fromkeys(
                    [*rules, "strict", DEFAULT_GATE]):
                for i in range(0, runs, block):
                    jobs.append((rule, options.get(rule, {}), SCENARIOS[scen], n, screen,
                                 seeds[i:i + block]))
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        blocks = list(pool.map(_run_block, jobs))
    results: dict[tuple[str, int, str, int], list[RunResult]] = {}
    for job, out in zip(jobs, blocks):
        results.setdefault((job[2].name, job[3], job[0], job[4].k), []).extend(out)

    print(f"gate_sim: {runs} runs per row, seed {args.seed}, default rule {DEFAULT_GATE!r}"
          + (f", options {options}" if options else "")
          + (f", screening K={ks} B={args.screen_batch} pool={args.screen_pool}"
             + (f" keep={args.screen_keep[0]}/{args.screen_keep[1]}" if args.screen_keep else "")
             + (" race" if args.screen_race else "") if ks else ""))
    summaries: dict[tuple[str, int, str, int], Summary] = {}
    for k in screens:
        for scen, n in configs:
            rows = [summarise(rule, results[(scen, n, rule, k)])
                    for rule in dict.fromkeys([*rules, "strict", DEFAULT_GATE])
                    if (scen, n, rule, k) in results]
            for s in rows:
                summaries[(scen, n, s.rule, k)] = s
            if rows:
                what = (f", screening {screens[k].describe()} pool={args.screen_pool}"
                        if k else "")
                print(f"\nscenario {scen} ({SCENARIOS[scen].description}), n_val={n}, "
                      f"{SCENARIOS[scen].steps} steps{what}")
                print(table(rows, screened=bool(k)))
                if k:
                    s = next((r for r in rows if r.rule == DEFAULT_GATE), rows[0])
                    print(f"passed the screen ({s.rule}): " + ", ".join(
                        f"{kind} {100 * s.pass_rate[kind]:.1f}%" for kind in KINDS))
    print(f"\nelapsed {time.perf_counter() - started:.0f}s on {args.workers} worker(s)")
    for k in screens:
        _compare(f"[{screens[k].describe()}]", results, summaries, k, runs)

if __name__ == "__main__":
    main()
