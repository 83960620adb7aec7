"""Is skill B better than skill A on these items, or is the difference noise?

Both skills are scored on the same items through the evaluation path `evaluate` uses
(`api.target_evaluator`), `samples` times each (sample k is request k, a distinct request and
seed), and compared item by item, so item difficulty cancels. The data pick the test:

- every score 0 or 1: exact McNemar on the discordant sample pairs (each (item, sample) where
  exactly one skill succeeded). Under "for every item, neither skill is the likelier to win a
  disagreement" each discordant pair is a fair coin given the item, so the test stays exact
  with repeated samples of the same item.
- graded scores: the two-sided sign test on the per-item mean differences.

In both cases the 95% interval for the mean difference is a paired bootstrap over items (an
item's samples stay together), and the verdict names a winner only when p <= alpha.
Infrastructure failures (no score) drop that sample pair from both sides; an item with no pair
left is dropped and counted, never scored as wrong.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skilltrain.api import target_evaluator
from skilltrain.config import ModelConfig
from skilltrain.data import Task, tasks_from_objects
from skilltrain.evaluation import NothingScored
from skilltrain.models.base import ChatModel
from skilltrain.package import as_skill
from skilltrain.records import Rollout
from skilltrain.skill import Skill
from skilltrain.stats import is_binary, mcnemar, paired_bootstrap, sign_test

ALPHA = 0.05


@dataclass(frozen=True)
class ItemPair:
    """One item's paired outcome: each side's mean over the samples both sides scored."""

    id: str
    type: str
    a: float | None  # None: no sample pair of this item could be scored on both sides
    b: float | None
    pairs: int  # sample pairs scored on both sides
    failed: int  # sample pairs dropped for an infrastructure failure on either side
    a_only: int = 0  # 0/1 scores: sample pairs only A solved
    b_only: int = 0  # and only B solved

    @property
    def diff(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class Group:
    """The comparison restricted to one task type (or all of them: `total`)."""

    name: str
    n: int
    a: float | None
    b: float | None
    a_better: int  # 0/1: discordant sample pairs A won; graded: items with A > B
    b_better: int
    excluded: int  # items with no scorable pair

    @property
    def diff(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass
class Comparison:
    """Everything `compare` found: `verdict` is the line to read, `groups` the table, `flips`
    the items to look at."""

    items: list[ItemPair]
    samples: int
    binary: bool
    test: str  # "mcnemar" or "sign_test"
    p_value: float
    ci95: tuple[float, float]
    a_label: str = "A"
    b_label: str = "B"
    alpha: float = ALPHA
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def compared(self) -> list[ItemPair]:
        return [i for i in self.items if i.diff is not None]

    @property
    def n(self) -> int:
        return len(self.compared)

    @property
    def mean_a(self) -> float:
        return math.fsum(i.a for i in self.compared) / self.n  # type: ignore[misc]

    @property
    def mean_b(self) -> float:
        return math.fsum(i.b for i in self.compared) / self.n  # type: ignore[misc]

    @property
    def diff(self) -> float:
        return self.mean_b - self.mean_a

    @property
    def excluded_items(self) -> int:
        return len(self.items) - self.n

    @property
    def failed_pairs(self) -> int:
        return sum(i.failed for i in self.items)

    @property
    def winner(self) -> str | None:
        """"A" or "B" when the test is significant at `alpha`, else None."""
        total = self.groups[-1]
        if self.p_value > self.alpha or total.a_better == total.b_better:
            return None
        return "B" if total.b_better > total.a_better else "A"

    @property
    def verdict(self) -> str:
        lo, hi = self.ci95
        head = {"B": "B is better than A", "A": "A is better than B",
                None: "no significant difference"}[self.winner]
        line = (f"{head}: {self.diff:+.3f} ({self.mean_a:.3f} -> {self.mean_b:.3f}), "
                f"{format_p(self.p_value)}, 95% [{lo:+.3f}, {hi:+.3f}], n={self.n}")
        if self.samples > 1:
            line += f" items x {self.samples} samples"
        if self.excluded_items or self.failed_pairs:
            line += (f"; {self.excluded_items} items and {self.failed_pairs} sample pairs "
                     "excluded (infrastructure failures)")
        return line

    @property
    def groups(self) -> list[Group]:
        """One row per task type, then the total."""
        types = sorted({i.type for i in self.items})
        rows = [group(t, [i for i in self.items if i.type == t], self.binary) for t in types]
        return [*rows, group("total", self.items, self.binary)]

    @property
    def flips(self) -> dict[str, list[ItemPair]]:
        """Items where one side did better: for 0/1 scores with one sample, the items A got
        right and B wrong (`a_better`) and the reverse (`b_better`)."""
        done = self.compared
        return {"a_better": [i for i in done if i.diff < 0],  # type: ignore[operator]
                "b_better": [i for i in done if i.diff > 0]}  # type: ignore[operator]

    def to_json(self) -> dict[str, Any]:
        def item(i: ItemPair) -> dict[str, Any]:
            return {"id": i.id, "type": i.type, "a": _r(i.a), "b": _r(i.b), "pairs": i.pairs,
                    "failed": i.failed}

        return {
            "verdict": self.verdict, "winner": self.winner, "a": self.a_label,
            "b": self.b_label, "test": self.test, "p_value": self.p_value,
            "alpha": self.alpha, "mean_a": _r(self.mean_a), "mean_b": _r(self.mean_b),
            "diff": _r(self.diff), "ci95": [_r(self.ci95[0]), _r(self.ci95[1])],
            "n": self.n, "samples": self.samples, "binary": self.binary,
            "excluded": {"items": self.excluded_items, "sample_pairs": self.failed_pairs},
            "by_type": [{"type": g.name, "n": g.n, "a": _r(g.a), "b": _r(g.b),
                         "diff": _r(g.diff), "a_better": g.a_better, "b_better": g.b_better,
                         "excluded": g.excluded} for g in self.groups],
            "flips": {k: [item(i) for i in v] for k, v in self.flips.items()},
            "items": [item(i) for i in self.items],
            "usage": self.usage,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def format_p(p: float) -> str:
    """`p=0.031`, or `p<0.001` below what three decimals show."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def group(name: str, items: Sequence[ItemPair], binary: bool) -> Group:
    done = [i for i in items if i.diff is not None]
    if binary:
        a_better, b_better = sum(i.a_only for i in done), sum(i.b_only for i in done)
    else:
        a_better = sum(i.diff < 0 for i in done)  # type: ignore[operator]
        b_better = sum(i.diff > 0 for i in done)  # type: ignore[operator]
    n = len(done)
    return Group(name, n, math.fsum(i.a for i in done) / n if n else None,  # type: ignore[misc]
                 math.fsum(i.b for i in done) / n if n else None,  # type: ignore[misc]
                 a_better, b_better, len(items) - n)


def pair_items(tasks: Sequence[Task], a_runs: Sequence[Sequence[float | None]],
               b_runs: Sequence[Sequence[float | None]]) -> list[ItemPair]:
    """Per item, the samples scored on both sides (`a_runs[k][i]`: sample k of task i)."""
    out = []
    for i, task in enumerate(tasks):
        both = [(a[i], b[i]) for a, b in zip(a_runs, b_runs)
                if a[i] is not None and b[i] is not None]
        failed = len(a_runs) - len(both)
        if not both:
            out.append(ItemPair(task.id, task.type, None, None, 0, failed))
            continue
        out.append(ItemPair(
            task.id, task.type, math.fsum(x for x, _ in both) / len(both),
            math.fsum(y for _, y in both) / len(both), len(both), failed,
            a_only=sum(x > y for x, y in both), b_only=sum(y > x for x, y in both)))
    return out


def analyse(items: list[ItemPair], *, samples: int, binary: bool, resamples: int = 2000,
            seed: int = 0, alpha: float = ALPHA) -> Comparison:
    """The test the data call for, the bootstrap interval and the verdict, from paired items."""
    done = [i for i in items if i.diff is not None]
    if binary:
        test = "mcnemar"
        p = mcnemar(sum(i.a_only for i in done), sum(i.b_only for i in done))
    else:
        test = "sign_test"
        p = sign_test(i.diff for i in done).p_value  # type: ignore[misc]
    ci = paired_bootstrap([i.diff for i in done], resamples=resamples,  # type: ignore[misc]
                          seed=seed)
    return Comparison(items=items, samples=samples, binary=binary, test=test, p_value=p,
                      ci95=ci, alpha=alpha)


async def acompare(skill_a: Skill | str | Path, skill_b: Skill | str | Path,
                   tasks: Iterable[Task | dict], *,
                   target: str | dict[str, Any] | ModelConfig | ChatModel, scorer: Any,
                   harness: Any = None, samples: int = 1, seed: int = 0,
                   resamples: int = 2000, alpha: float = ALPHA) -> Comparison:
    """`compare`, awaitable. Raises NothingScored when no item could be scored on both sides."""
    if samples < 1:
        raise ValueError("compare: samples must be at least 1")
    a, b = as_skill(skill_a), as_skill(skill_b)
    task_list = tasks_from_objects(tasks)
    if not task_list:
        raise ValueError("compare: no tasks")
    async with target_evaluator(task_list, target=target, scorer=scorer,
                                harness=harness) as (evaluator, meter):
        runs: list[list[Rollout]] = await asyncio.gather(*(
            evaluator.rollouts(skill, task_list, k) for k in range(samples) for skill in (a, b)))
    values = [[evaluator.value(r) for r in run] for run in runs]
    items = pair_items(task_list, values[0::2], values[1::2])
    if not any(i.pairs for i in items):
        raise NothingScored([r for run in runs for r in run if not r.ok])
    scored = [v for run in values for v in run if v is not None]
    result = analyse(items, samples=samples, binary=is_binary(scored), resamples=resamples,
                     seed=seed, alpha=alpha)
    result.usage = meter.summary()["roles"]
    return result


def compare(skill_a: Skill | str | Path, skill_b: Skill | str | Path,
            tasks: Iterable[Task | dict], *,
            target: str | dict[str, Any] | ModelConfig | ChatModel, scorer: Any,
            harness: Any = None, samples: int = 1, seed: int = 0, resamples: int = 2000,
            alpha: float = ALPHA) -> Comparison:
    """Score two skills on the same tasks (`samples` samples each) and test the difference.

    Each skill is a Skill, its text, or a package folder's or .md file's path (as `evaluate`).
    `seed` seeds the bootstrap (the same data always give the same interval); the target's own
    sampling seed is the target config's. Raises NothingScored when no item could be scored on
    both sides, EndpointDown when the target cannot be reached."""
    return asyncio.run(acompare(skill_a, skill_b, tasks, target=target, scorer=scorer,
                                harness=harness, samples=samples, seed=seed,
                                resamples=resamples, alpha=alpha))
