"""Gate rules against a fake target with recorded per-item outcomes."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skilltrain.gate import (
    DEFAULT_GATE,
    GATE_NAMES,
    Decision,
    Outcome,
    PairedGate,
    make_gate,
)

ITEMS = [f"t{i:03d}" for i in range(50)]


class FakeEvaluate:
    """Deterministic outcomes per (skill, item, sample); logs every triple asked for.

    ``table[skill][item]`` is one outcome (the same at every sample) or a list indexed by sample
    (the last entry repeats for higher samples).
    """

    def __init__(self, table: dict[str, dict[str, Outcome | list[Outcome]]]) -> None:
        self.table = table
        self.log: list[tuple[str, str, int]] = []

    async def __call__(self, skill: object, task_ids: Sequence[str], sample: int = 0
                       ) -> dict[str, Outcome]:
        out: dict[str, Outcome] = {}
        for t in task_ids:
            self.log.append((str(skill), t, sample))
            if t not in self.table[str(skill)]:
                continue  # a broken evaluate that forgets an item
            value = self.table[str(skill)][t]
            if isinstance(value, list):
                value = value[min(sample, len(value) - 1)]
            out[t] = value
        return out

    def samples(self, skill: str, min_sample: int = 0) -> list[tuple[str, int]]:
        return [(t, s) for k, t, s in self.log if k == skill and s >= min_sample]


def decide(rule: str, cand: dict, inc: dict, items: Sequence[str] = ITEMS,
           **options: object) -> tuple[Decision, FakeEvaluate]:
    fake = FakeEvaluate({"cand": cand, "inc": inc})
    decision = asyncio.run(make_gate(rule, **options).decide("cand", "inc", items, fake))
    return decision, fake


def vector(values: Sequence[Outcome], items: Sequence[str] = ITEMS) -> dict[str, Outcome]:
    return dict(zip(items, values, strict=True))


# -- configuration ---------------------------------------------------------------------------


def test_names_and_default() -> None:
    assert set(GATE_NAMES) >= {"strict", "strict_racing", "paired"}
    assert DEFAULT_GATE in GATE_NAMES
    for name in GATE_NAMES:
        assert make_gate(name).name == name


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="strict_racing"):
        make_gate("bayes")


def test_unknown_and_invalid_options() -> None:
    with pytest.raises(ValueError, match="chunk"):
        make_gate("strict", chunk=5)
    with pytest.raises(ValueError, match="valid options"):
        make_gate("paired", alhpa=0.1)
    with pytest.raises(ValueError):
        make_gate("paired", theta=0.4)
    with pytest.raises(ValueError):
        make_gate("paired", alpha=0.6, beta=0.5)
    with pytest.raises(ValueError):
        make_gate("strict_racing", chunk=0)
    assert make_gate("paired", chunk=5, rounds=0).chunk == 5  # type: ignore[attr-defined]


# -- strict and strict_racing ----------------------------------------------------------------


def test_strict_rejects_ties_and_accepts_strictly_better() -> None:
    inc = vector([1.0] * 25 + [0.0] * 25)
    tie = vector([0.0] * 25 + [1.0] * 25)
    better = vector([0.0] * 24 + [1.0] * 26)
    d_tie, _ = decide("strict", tie, inc)
    d_better, _ = decide("strict", better, inc)
    assert not d_tie.accepted
    assert d_better.accepted
    assert d_better.candidate_score == pytest.approx(0.52)
    assert d_better.incumbent_score == pytest.approx(0.50)
    assert d_better.items_used == 50 and d_better.new_evaluations == 100


outcomes = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1), st.none())


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(outcomes, outcomes), min_size=0, max_size=40),
    chunk=st.integers(1, 12),
    stop_when_won=st.booleans(),
)
def test_strict_racing_makes_strict_decisions(pairs: list, chunk: int,
                                              stop_when_won: bool) -> None:
    items = [f"t{i}" for i in range(len(pairs))]
    cand = vector([p[0] for p in pairs], items)
    inc = vector([p[1] for p in pairs], items)
    strict, _ = decide("strict", cand, inc, items)
    racing, fake = decide("strict_racing", cand, inc, items, chunk=chunk,
                          stop_when_won=stop_when_won)
    assert racing.accepted == strict.accepted
    assert racing.items_used <= strict.items_used
    assert len(fake.log) == len(set(fake.log)) == racing.new_evaluations
    if not racing.stopped_early:
        assert racing.candidate_score == pytest.approx(strict.candidate_score)
        assert racing.excluded == strict.excluded


def test_strict_racing_saves_items_on_recorded_sequences() -> None:
    """Recorded runs: a moving incumbent and mostly worse candidates, as in training."""
    rng = random.Random(7)
    used_strict = used_racing = agreements = 0
    for _ in range(200):
        p_inc = rng.uniform(0.2, 0.8)
        p_cand = min(1.0, max(0.0, p_inc + rng.choice([-0.3, -0.15, -0.05, 0.0, 0.1])))
        inc = vector([float(rng.random() < p_inc) for _ in ITEMS])
        cand = vector([float(rng.random() < p_cand) for _ in ITEMS])
        strict, _ = decide("strict", cand, inc)
        racing, _ = decide("strict_racing", cand, inc)
        agreements += strict.accepted == racing.accepted
        used_strict += strict.items_used
        used_racing += racing.items_used
    assert agreements == 200
    assert used_racing < 0.9 * used_strict


def test_strict_racing_stops_when_it_cannot_win() -> None:
    inc = vector([1.0] * 50)
    cand = vector([0.0] * 50)
    d, fake = decide("strict_racing", cand, inc, chunk=10)
    assert not d.accepted and d.stopped_early
    assert d.items_used == 10  # the incumbent solved every remaining item: no way back
    assert fake.samples("cand") == [(t, 0) for t in ITEMS[:10]]


def test_strict_racing_skips_items_the_incumbent_failed() -> None:
    inc = vector([None] * 10 + [0.0] * 40)
    cand = vector([1.0] * 50)
    d, fake = decide("strict_racing", cand, inc, chunk=50, stop_when_won=False)
    assert d.accepted and d.excluded == 10 and d.items_used == 40
    assert all(t not in ITEMS[:10] for t, _ in fake.samples("cand"))


# -- paired ----------------------------------------------------------------------------------


def test_paired_stops_a_clearly_worse_candidate_early() -> None:
    inc = vector([1.0, 0.0] * 25)
    cand = vector([0.0] * 50)
    d, fake = decide("paired", cand, inc, chunk=10)
    assert not d.accepted and d.stopped_early
    assert d.items_used == 10
    assert d.evidence["looks"][0][0] == 10 and d.evidence["phase"] == "race"
    assert fake.samples("cand") == [(t, 0) for t in ITEMS[:10]]
    assert d.new_evaluations == 20


def test_paired_accepts_a_clearly_better_candidate_without_resampling() -> None:
    inc = vector([1.0, 0.0] * 25)
    cand = vector([1.0] * 50)
    d, fake = decide("paired", cand, inc)
    assert d.accepted and not d.stopped_early and d.items_used == 50
    assert d.evidence["wins"] == 25 and d.evidence["losses"] == 0
    assert fake.samples("cand", min_sample=1) == []


def test_paired_rejects_a_candidate_that_only_ties() -> None:
    inc = vector([1.0, 0.0] * 25)
    d, _ = decide("paired", dict(inc), inc)
    assert not d.accepted
    assert d.evidence["llr"] == 0


def test_paired_resamples_only_disagreements_and_noise_washes_out() -> None:
    # First samples: 6 wins (5 of them luck that vanishes on re-sampling) and 3 real losses,
    # which leaves the sequential test undecided at the end of the split; strict would accept.
    inc: dict[str, Outcome | list[Outcome]] = {t: 0.0 for t in ITEMS}
    cand: dict[str, Outcome | list[Outcome]] = {t: 0.0 for t in ITEMS}
    lucky, real, lost = ITEMS[3:48:9], ITEMS[1], ITEMS[40:43]
    for t in lucky:
        cand[t] = [1.0, 0.0]
    cand[real] = 1.0
    for t in lost:
        inc[t] = 1.0
    strict, _ = decide("strict", cand, inc)
    assert strict.accepted
    d, fake = decide("paired", cand, inc, rounds=3)
    disputed = {*lucky, real, *lost}
    resampled_c = {t for t, _ in fake.samples("cand", min_sample=1)}
    resampled_i = {t for t, _ in fake.samples("inc", min_sample=1)}
    assert resampled_c == resampled_i == disputed
    assert d.evidence["phase"] in ("resolve", "truncation")
    assert d.evidence["resampled_items"] >= len(disputed)
    assert d.evidence["wins"] < 6
    assert not d.accepted


def test_paired_reports_soft_wins_and_losses() -> None:
    inc = vector([0.5] * 50)
    cand = vector([0.9] * 20 + [0.5] * 30)
    d, _ = decide("paired", cand, inc)
    assert d.accepted
    assert d.evidence["wins"] == pytest.approx(8.0)
    assert d.candidate_score == pytest.approx(0.66)


def test_paired_alternative_scales_with_the_split() -> None:
    gate = PairedGate()
    assert gate.share(20) > gate.share(50) > gate.share(200) > 0.5
    assert gate.share(50) == pytest.approx(0.6, abs=0.01)
    assert PairedGate(theta=0.7).share(200) == 0.7
    with pytest.raises(ValueError):
        PairedGate(edge=0)
    # The same record of 3 wins and 1 loss is stronger evidence on a small split.
    assert PairedGate.llr(3, 1, gate.share(20)) > PairedGate.llr(3, 1, gate.share(200)) > 0


def test_paired_error_bound_holds_for_fair_coins() -> None:
    """Ville's bound: a no-better candidate reaches the upper boundary w.p. <= alpha/(1-beta)."""
    # Looks after every item and acceptance on first reaching A: the case Ville's bound is about.
    gate = PairedGate(alpha=0.1, beta=0.1, theta=0.7, rounds=0, chunk=1, stop_when_won=True)
    rng = random.Random(3)
    accepted = 0
    trials = 400
    for _ in range(trials):
        inc = vector([float(rng.random() < 0.5) for _ in ITEMS])
        cand = vector([float(rng.random() < 0.5) for _ in ITEMS])
        fake = FakeEvaluate({"cand": cand, "inc": inc})
        d = asyncio.run(gate.decide("cand", "inc", ITEMS, fake))
        accepted += d.accepted and d.evidence["llr"] >= gate.upper
    assert 0 < accepted / trials <= gate.alpha / (1 - gate.beta)


# -- every rule ------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", GATE_NAMES)
def test_failures_are_excluded_from_both_sides(rule: str) -> None:
    # The candidate fails on 20 items the incumbent solved; scored as wrong, it would lose.
    inc = vector([1.0] * 20 + [0.0] * 30)
    cand = vector([None] * 20 + [1.0] * 15 + [0.0] * 15)
    d, _ = decide(rule, cand, inc)
    assert d.excluded == 20
    assert d.accepted
    assert d.incumbent_score == pytest.approx(0.0)
    if not d.stopped_early:  # strict_racing may have won before seeing the last 15 items
        assert d.candidate_score == pytest.approx(0.5)


@pytest.mark.parametrize("rule", GATE_NAMES)
def test_incumbent_failures_are_excluded_too(rule: str) -> None:
    inc = vector([None] * 20 + [1.0] * 30)
    cand = vector([0.0] * 20 + [1.0] * 30)
    d, _ = decide(rule, cand, inc)
    assert d.excluded == 20
    assert not d.accepted  # equal on every compared item
    assert d.candidate_score == d.incumbent_score == 1.0


@pytest.mark.parametrize("rule", GATE_NAMES)
def test_all_items_failing_is_a_rejection(rule: str) -> None:
    d, _ = decide(rule, vector([None] * 50), vector([1.0] * 50))
    assert not d.accepted
    assert d.excluded == d.items_used > 0
    assert d.candidate_score == d.incumbent_score == 0.0


@settings(max_examples=60, deadline=None)
@given(
    rule=st.sampled_from(GATE_NAMES),
    cand=st.lists(st.lists(outcomes, min_size=1, max_size=4), min_size=30, max_size=30),
    inc=st.lists(st.lists(outcomes, min_size=1, max_size=4), min_size=30, max_size=30),
)
def test_no_triple_is_requested_twice(rule: str, cand: list, inc: list) -> None:
    items = ITEMS[:30]
    d, fake = decide(rule, dict(zip(items, cand)), dict(zip(items, inc)), items)
    assert len(fake.log) == len(set(fake.log))
    assert d.new_evaluations == len(fake.log)
    assert d.items_used == len({t for k, t, _ in fake.log if k == "cand"})
    json.dumps(d.evidence)


@pytest.mark.parametrize("rule", GATE_NAMES)
def test_identical_skill_costs_nothing(rule: str) -> None:
    fake = FakeEvaluate({})
    d = asyncio.run(make_gate(rule).decide("same", "same", ITEMS, fake))
    assert not d.accepted and d.new_evaluations == 0 and fake.log == []


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "1"])
def test_invalid_outcomes_raise(bad: object) -> None:
    with pytest.raises(ValueError, match="t000"):
        decide("strict", {**vector([1.0] * 50), "t000": bad}, vector([0.0] * 50))


def test_missing_outcome_raises() -> None:
    cand = vector([1.0] * 50)
    del cand["t007"]
    with pytest.raises(ValueError, match="t007"):
        decide("strict", cand, vector([0.0] * 50))


def test_sign_test_needs_significance() -> None:
    inc = vector([0.0] * 50)
    d_strong, _ = decide("sign_test", vector([1.0] * 10 + [0.0] * 40), inc)
    assert d_strong.accepted and d_strong.evidence["p_value"] == pytest.approx(2 ** -10)
    mixed_inc = vector([0.0] * 6 + [1.0] * 4 + [0.0] * 40)
    mixed_cand = vector([1.0] * 6 + [0.0] * 44)
    d_weak, _ = decide("sign_test", mixed_cand, mixed_inc)
    assert not d_weak.accepted
    assert (d_weak.evidence["wins"], d_weak.evidence["losses"]) == (6, 4)
