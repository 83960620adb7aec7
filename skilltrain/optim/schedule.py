"""The learning rate: how many edits may land in one step."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine", "autonomous")


def edit_budget(schedule: str, step: int, total_steps: int, lr: int, lr_min: int) -> int:
    """Budget L_t for step `step` (0-based) of `total_steps`.

    `linear` and `cosine` decay from `lr` to `lr_min` over the run (the paper's default is
    cosine from 4 to 2). `autonomous` returns the upper bound: the optimizer picks within it.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if schedule in ("constant", "autonomous") or total_steps <= 1:
        return lr
    progress = min(1.0, max(0.0, step / (total_steps - 1)))
    if schedule == "linear":
        value = lr - (lr - lr_min) * progress
    else:
        value = lr_min + (lr - lr_min) * (1 + math.cos(math.pi * progress)) / 2
    return max(lr_min, min(lr, round(value)))
