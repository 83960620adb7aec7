"""The statistics of compare / eval --target / train --seeds on cases computed by hand, and the
bootstrap interval's coverage in a simulation whose true mean difference is known."""

from __future__ import annotations

import math
import random

import pytest

from skilltrain.stats import (
    mcnemar,
    mean_interval,
    paired_bootstrap,
    sign_test,
    t95,
    t_interval,
    wilson,
)


@pytest.mark.parametrize(("b", "c", "p"), [
    (0, 5, 0.0625),                      # 2 * 1/32
    (1, 9, 22 / 1024),                   # 2 * (1 + 10) / 1024 = 0.021484375
    (2, 8, 112 / 1024),                  # 2 * (1 + 10 + 45) / 1024
    (3, 0, 0.25),                        # 2 * 1/8
    (5, 5, 1.0),                         # capped at 1
    (0, 0, 1.0),                         # no discordant pair: no evidence
    (0, 1, 1.0),                         # 2 * 1/2
])
def test_mcnemar_exact_p_values_by_hand(b, c, p):
    assert mcnemar(b, c) == pytest.approx(p, abs=1e-12)
    assert mcnemar(c, b) == pytest.approx(p, abs=1e-12)


def test_mcnemar_matches_the_two_sided_binomial_definition():
    for n in range(1, 25):
        for k in range(n + 1):
            low = min(k, n - k)
            tail = sum(math.comb(n, j) for j in range(low + 1)) / 2**n
            assert mcnemar(k, n - k) == pytest.approx(min(1.0, 2 * tail), abs=1e-12)
    with pytest.raises(ValueError):
        mcnemar(-1, 3)


def test_sign_test_counts_directions_and_drops_ties():
    result = sign_test([0.5, 0.2, -0.1, 0.0, 0.3])
    assert (result.wins, result.losses, result.ties) == (3, 1, 1)
    assert result.p_value == pytest.approx(2 * (1 + 4) / 16)  # n=4, P(X<=1) = 5/16
    assert sign_test([0.9] * 6).p_value == pytest.approx(2 / 64)
    assert sign_test([0.0, 0.0]).p_value == 1.0


def test_t_interval_on_known_values():
    lo, hi = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(2) = 4.303
    assert lo == pytest.approx(2 - 4.303 / math.sqrt(3))
    assert hi == pytest.approx(2 + 4.303 / math.sqrt(3))
    lo, hi = t_interval([0.300, 0.300, 0.333])  # the README's three house-route seeds
    assert (round(lo, 3), round(hi, 3)) == (0.264, 0.358)
    assert t_interval([0.5]) is None
    assert t95(1) == 12.706 and t95(30) == 2.042 and t95(200) == pytest.approx(1.9725)


def test_wilson_interval_known_values():
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson(30, 30)
    assert hi == 1.0 and lo == pytest.approx(0.8865, abs=1e-4)  # all solved is not certainty
    assert wilson(0, 0) is None
    assert mean_interval([1.0, 0.0, 1.0, 1.0]) == wilson(3, 4)  # 0/1 data: Wilson
    graded = [0.2, 0.4, 0.6]
    assert mean_interval(graded) == t_interval(graded)  # graded: t


def test_bootstrap_is_seeded_and_brackets_the_mean():
    diffs = [0.13, -0.2, 0.41, 0.05, 0.3, -0.07, 0.22, 0.18, 0.0, 0.35]
    a = paired_bootstrap(diffs, resamples=500, seed=3)
    assert a == paired_bootstrap(diffs, resamples=500, seed=3)
    assert a != paired_bootstrap(diffs, resamples=500, seed=4)
    assert a[0] < sum(diffs) / len(diffs) < a[1]
    assert paired_bootstrap([0.25, 0.25]) == (0.25, 0.25)
    with pytest.raises(ValueError):
        paired_bootstrap([])


def test_bootstrap_interval_covers_the_true_difference_about_95_percent():
    """200 simulated comparisons of 40 items whose per-item difference is -1, 0 or +1 with
    probabilities 0.2 / 0.5 / 0.3: the true mean difference is +0.1."""
    rng = random.Random(12345)
    truth, hits, draws = 0.1, 0, 200
    for k in range(draws):
        diffs = rng.choices([-1, 0, 1], weights=[0.2, 0.5, 0.3], k=40)
        lo, hi = paired_bootstrap(diffs, resamples=1000, seed=k)
        hits += lo <= truth <= hi
    coverage = hits / draws
    # the percentile bootstrap runs slightly below nominal at n = 40; 200 draws have sd ~1.5%
    assert 0.89 <= coverage <= 0.99, coverage
