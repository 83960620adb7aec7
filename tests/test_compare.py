"""`compare` with an in-process fake target whose outcomes per skill and item are known: the
test the data call for, the verdict line, the flips, and infrastructure failures excluded."""

from __future__ import annotations

import math
import re

import pytest

from skilltrain.compare import compare
from skilltrain.evaluation import NothingScored
from skilltrain.models.base import ModelError
from skilltrain.models.fake import FakeModel, last_user, system_prompt

A, B = "# Skill A\nAnswer.\n", "# Skill B\nAnswer carefully.\n"


def tasks(n: int = 30) -> list[dict]:
    return [{"id": f"q{i:02d}", "input": f"item {i}", "answer": "yes",
             "type": "low" if i < n // 2 else "high"} for i in range(n)]


def target(right: dict[str, set[int]], fail: dict[str, set[int]] | None = None,
           by_seed: dict[str, dict[int, set[int]]] | None = None) -> FakeModel:
    """Says "yes" (right) when the skill's set holds the item; raises a non-retryable
    infrastructure error for the items in `fail`; `by_seed` overrides per request seed."""
    def respond(request: dict) -> str | Exception:
        side = "A" if "Skill A" in system_prompt(request) else "B"
        i = int(last_user(request).split()[-1])
        if i in (fail or {}).get(side, set()):
            return ModelError("http_error", "injected")
        good = right[side]
        if by_seed and side in by_seed:
            good = by_seed[side].get(request.get("seed", 0), good)
        return "yes" if i in good else "no"
    return FakeModel(respond)


def test_binary_scores_use_exact_mcnemar_and_name_the_flips():
    # A solves 0-9; B solves 0-17 except 5: B only on 10-17 (8), A only on 5 (1)
    model = target({"A": set(range(10)), "B": set(range(18)) - {5}})
    result = compare(A, B, tasks(), target=model, scorer="exact")
    assert result.test == "mcnemar" and result.binary
    assert result.p_value == pytest.approx(2 * (1 + 9) / 2**9)  # b=1, c=8
    assert result.mean_a == pytest.approx(10 / 30) and result.mean_b == pytest.approx(17 / 30)
    assert re.fullmatch(r"B is better than A: \+0\.233 \(0\.333 -> 0\.567\), p=0\.039, "
                        r"95% \[\+0\.\d{3}, \+0\.\d{3}\], n=30", result.verdict), result.verdict
    lo, hi = result.ci95
    assert 0 < lo < result.diff < hi
    assert [i.id for i in result.flips["a_better"]] == ["q05"]
    assert [i.id for i in result.flips["b_better"]] == [f"q{i:02d}" for i in range(10, 18)]
    high, low, total = result.groups  # types by name, then the total
    assert (low.name, low.n, low.a_better, low.b_better) == ("low", 15, 1, 5)  # 10-14 in low
    assert (high.name, high.b_better) == ("high", 3)
    assert (total.name, total.n, total.a_better, total.b_better) == ("total", 30, 1, 8)
    data = result.to_json()
    assert data["winner"] == "B" and data["flips"]["a_better"][0]["id"] == "q05"


def test_no_significant_difference_and_the_reverse_direction():
    model = target({"A": {0, 1, 2}, "B": {0, 1, 3}})
    result = compare(A, B, tasks(), target=model, scorer="exact")
    assert result.winner is None and result.p_value == 1.0
    assert result.verdict.startswith("no significant difference: +0.000")
    worse = compare(A, B, tasks(), target=target({"A": set(range(12)), "B": set()}),
                    scorer="exact")
    assert worse.winner == "A" and worse.verdict.startswith("A is better than B: -0.400")


def test_infrastructure_failures_are_excluded_pairwise_and_counted_never_wrong():
    # items 20 and 21 fail on B: without them A and B differ only on 10-17 (B right)
    model = target({"A": set(range(10)), "B": set(range(18))}, fail={"B": {20, 21}})
    result = compare(A, B, tasks(), target=model, scorer="exact")
    assert result.n == 28 and result.excluded_items == 2 and result.failed_pairs == 2
    assert result.mean_a == pytest.approx(10 / 28)  # the failed items left A's side too
    assert result.p_value == pytest.approx(2 / 2**8)
    assert "2 items and 2 sample pairs excluded (infrastructure failures)" in result.verdict
    ids = {i.id for v in result.flips.values() for i in v}
    assert not ids & {"q20", "q21"}
    assert result.groups[-1].excluded == 2


def test_repeated_samples_are_distinct_requests_and_pairs_count_per_sample():
    # B solves items 0-4 on samples 0 and 1 (request seeds 0, 1) but not on sample 2
    model = target({"A": set(), "B": set(range(5))}, by_seed={"B": {2: set()}})
    result = compare(A, B, tasks(10), target=model, scorer="exact", samples=3)
    seeds = sorted({r.get("seed") for r in model.requests})
    assert seeds == [0, 1, 2] and len(model.requests) == 2 * 3 * 10
    assert result.test == "mcnemar" and result.groups[-1].b_better == 10  # 5 items x 2 samples
    assert result.p_value == pytest.approx(2 / 2**10)
    item = next(i for i in result.items if i.id == "q00")
    assert item.b == pytest.approx(2 / 3) and item.pairs == 3
    assert result.verdict.endswith("n=10 items x 3 samples")


def test_graded_scores_use_the_sign_test():
    def respond(request: dict) -> str:
        i = int(last_user(request).split()[-1])
        if "Skill A" in system_prompt(request):
            return "0.4"
        return "0.6" if i < 20 else "0.3"

    result = compare(A, B, tasks(25), target=FakeModel(respond),
                     scorer=lambda task, answer: float(answer) if answer != "yes" else 1.0)
    assert result.test == "sign_test" and not result.binary
    tail = sum(math.comb(25, j) for j in range(6)) / 2**25  # 20 wins, 5 losses
    assert result.p_value == pytest.approx(2 * tail)
    assert result.diff == pytest.approx(0.14)
    assert result.groups[-1].b_better == 20 and result.groups[-1].a_better == 5
    assert result.winner == "B"


def test_nothing_scored_raises_instead_of_a_verdict():
    model = target({"A": set(), "B": set()}, fail={"A": set(range(5))})
    with pytest.raises(NothingScored):
        compare(A, B, tasks(5), target=model, scorer="exact")
    with pytest.raises(ValueError):
        compare(A, B, tasks(5), target=model, scorer="exact", samples=0)


def test_p_values_print_as_an_equation_or_a_bound() -> None:
    from skilltrain.compare import format_p

    assert format_p(0.0312) == "p=0.031"
    assert format_p(2 * 0.5**12) == "p<0.001"  # 12 discordant pairs, all one way
