"""The learning rate: edit budgets per step for each schedule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skilltrain.optim.schedule import SCHEDULES, edit_budget


def budgets(schedule: str, total: int, lr: int, lr_min: int) -> list[int]:
    return [edit_budget(schedule, step, total, lr, lr_min) for step in range(total)]


def test_cosine_paper_default_four_to_two():
    b = budgets("cosine", 10, 4, 2)
    assert b[0] == 4 and b[-1] == 2
    assert b == sorted(b, reverse=True)
    assert set(b) == {2, 3, 4}


def test_linear_exact_values():
    assert budgets("linear", 5, 6, 2) == [6, 5, 4, 3, 2]


def test_constant_and_autonomous_stay_at_lr():
    assert budgets("constant", 7, 4, 1) == [4] * 7
    assert budgets("autonomous", 7, 4, 1) == [4] * 7


def test_single_step_run_uses_lr():
    for schedule in SCHEDULES:
        assert edit_budget(schedule, 0, 1, 5, 1) == 5


def test_steps_past_the_end_stay_at_lr_min():
    assert edit_budget("linear", 20, 10, 4, 2) == 2
    assert edit_budget("cosine", 20, 10, 4, 2) == 2


@settings(max_examples=200, deadline=None)
@given(schedule=st.sampled_from(["linear", "cosine"]), total=st.integers(2, 60),
       lr=st.integers(1, 12), drop=st.integers(0, 11))
def test_property_decaying_schedules(schedule, total, lr, drop):
    lr_min = max(1, lr - drop)
    b = budgets(schedule, total, lr, lr_min)
    assert b[0] == lr and b[-1] == lr_min
    assert all(x >= y for x, y in zip(b, b[1:]))  # monotone non-increasing
    assert all(lr_min <= x <= lr for x in b)
    assert all(isinstance(x, int) for x in b)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="lr_schedule: expected one of .*'step'"):
        edit_budget("step", 0, 10, 4, 2)
