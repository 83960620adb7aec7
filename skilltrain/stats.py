"""The statistics behind `compare`, `eval` over several targets and `train --seeds`.

A user deciding whether to ship a skill asks whether a difference is real or noise; these are
the few textbook answers that fit the data skilltrain produces: paired outcomes on the same
items (McNemar, the sign test, a paired bootstrap), a mean of a handful of seed gains (Student's
t) and a share of 0/1 successes (Wilson). Pure Python on purpose: the package does not depend on
scipy or numpy, and these are exact or short enough to check by hand.

The exact binomial tail is the one the `sign_test` gate uses (`gate.sign_test.binomial_tail`),
imported rather than written twice.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from skilltrain.gate.sign_test import binomial_tail

# Two-sided 95% critical values of Student's t, by degrees of freedom 1..30.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z95 = 1.959964  # the normal's two-sided 95% point


def t95(df: int) -> float:
    """The two-sided 95% point of Student's t with `df` degrees of freedom (from the table up
    to 30; beyond, 1.96 + 2.5 / df, within 0.002 of the exact value)."""
    if df < 1:
        raise ValueError("t95: df must be at least 1")
    return _T95[df - 1] if df <= len(_T95) else 1.96 + 2.5 / df


def mcnemar(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for `b` pairs only A solved and `c` only B solved.

    Under "neither skill is better", each discordant pair is a fair coin, so with n = b + c
    the p-value is min(1, 2 P(Bin(n, 1/2) <= min(b, c))); concordant pairs say nothing about
    the direction and do not enter. No discordant pair: p = 1."""
    if b < 0 or c < 0:
        raise ValueError("mcnemar: counts must be >= 0")
    n = b + c
    if n == 0:
        return 1.0
    # P(X <= k) = P(X >= n - k) by the symmetry of Bin(n, 1/2)
    return min(1.0, 2.0 * binomial_tail(n, n - min(b, c)))


@dataclass(frozen=True)
class SignTest:
    """Two-sided sign test on paired differences: `wins` (> 0), `losses` (< 0), `ties`."""

    wins: int
    losses: int
    ties: int
    p_value: float


def sign_test(diffs: Iterable[float]) -> SignTest:
    """The sign test for graded paired differences (B - A per item): only the direction of each
    difference counts, so a few large differences cannot carry it alone; ties are dropped.
    It is McNemar's test on the signs, so the p-value comes from `mcnemar`."""
    wins = losses = ties = 0
    for d in diffs:
        if d > 0:
            wins += 1
        elif d < 0:
            losses += 1
        else:
            ties += 1
    return SignTest(wins, losses, ties, mcnemar(losses, wins))


def paired_bootstrap(diffs: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of paired differences, items resampled with
    replacement (`resamples` times, seeded so the same data always gives the same interval).

    Resampling whole items keeps each item's samples together, so repeated samples of one item
    do not pass for independent evidence. One difference: the interval is that point."""
    if not diffs:
        raise ValueError("paired_bootstrap: no differences")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError("paired_bootstrap: resamples >= 1 and level in (0, 1)")
    values = list(diffs)
    n = len(values)
    if n == 1 or min(values) == max(values):
        return values[0], values[0]
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    lo = means[max(0, math.floor(tail * resamples))]
    hi = means[min(resamples - 1, math.ceil((1 - tail) * resamples) - 1)]
    return lo, hi


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """95% Student-t interval for the mean of a few values (e.g. the test gains of 3 seeds);
    None with fewer than two, where the spread is unknown."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a share of 0/1 successes: unlike mean +- z*se it stays inside
    [0, 1] and does not collapse to a point at 0 or n successes (a skill that solved every item
    of 30 is not known to solve every item). None for n = 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError("wilson: successes must be in [0, n]")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def is_binary(values: Iterable[float]) -> bool:
    """Every value is 0 or 1: the data's own type picks the test (McNemar vs bootstrap)."""
    return all(v in (0, 1) for v in values)


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """A 95% interval for the mean score of one skill on n items: Wilson for 0/1 scores, the
    t interval for graded ones (at tens of items it is the normal interval, near enough)."""
    if not values:
        return None
    if is_binary(values):
        return wilson(round(sum(values)), len(values))
    return t_interval(values)
