"""The report's two figures, as PNG data URIs: validation score per step, and skill size.

Rendered with matplotlib's Agg canvas on a bare Figure (no pyplot, no global backend state), so
building a report never touches a display or another thread's plots; matplotlib is imported only
when a figure is drawn.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from typing import Any

from skilltrain.report.data import ACCEPTED, FORCED, REJECTED, SKIPPED, RunData, StepView

OUTCOME_COLOURS = {ACCEPTED: "#1a9850", REJECTED: "#d73027", SKIPPED: "#9e9e9e",
                   FORCED: "#f28e2b"}
DEFAULT_COLOUR = "#7b3294"  # failed slow updates and anything newer than this module


def outcome_colour(outcome: str) -> str:
    return OUTCOME_COLOURS.get(outcome, DEFAULT_COLOUR)


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _x(row: StepView) -> float:
    """Plot position: an epoch boundary sits between the last step of its epoch and the next."""
    step = row.step or 0
    return step - 0.5 if row.is_boundary else float(step)


def _style_axes(ax: Any) -> None:
    ax.grid(True, color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _epoch_lines(axes: Iterable[Any], history: list[StepView]) -> None:
    for row in history:
        if row.is_boundary:
            for ax in axes:
                ax.axvline(_x(row), color="#bbbbbb", linestyle=":", linewidth=1)


def validation_plot(data: RunData) -> str:
    """Validation score per step: the incumbent as a line, each candidate as a coloured point,
    and the learning rate (edit budget) underneath on the same step axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.2))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1]})
    incumbent = data.initial_val()
    line_x, line_y = [0.0], [incumbent]
    points: dict[str, tuple[list[float], list[float]]] = {}
    train_x, train_y, lr_x, lr_y, chosen_x, chosen_y = [], [], [], [], [], []
    for row in data.history:
        x, outcome = _x(row), row.outcome or ""
        cand, inc = row.val_candidate, row.val_incumbent
        if inc is not None:
            incumbent = inc
        y = cand if cand is not None else incumbent
        if y is not None:
            xs, ys = points.setdefault(outcome, ([], []))
            xs.append(x)
            ys.append(y)
        if outcome == ACCEPTED and cand is not None:
            incumbent = cand
        line_x.append(x)
        line_y.append(incumbent)
        if row.train_score is not None:
            train_x.append(x)
            train_y.append(row.train_score)
        if row.lr is not None:
            lr_x.append(x)
            lr_y.append(row.lr)
        if row.lr_chosen is not None:
            chosen_x.append(x)
            chosen_y.append(row.lr_chosen)
    pairs = [(x, y) for x, y in zip(line_x, line_y) if y is not None]
    if pairs:
        top.step([p[0] for p in pairs], [p[1] for p in pairs], where="post", color="#2c7fb8",
                 linewidth=2, label="incumbent (validation)", zorder=2)
    if train_x:
        top.plot(train_x, train_y, color="#9ecae1", linestyle="--", marker=".", linewidth=1,
                 label="train batch score", zorder=1)
    order = [ACCEPTED, REJECTED, SKIPPED, FORCED]
    for outcome in order + sorted(set(points) - set(order)):
        if outcome not in points:
            continue
        xs, ys = points[outcome]
        colour = outcome_colour(outcome)
        hollow = outcome == SKIPPED
        top.scatter(xs, ys, s=60, zorder=3, label=f"candidate {outcome}" if outcome else "step",
                    facecolors="white" if hollow else colour, edgecolors=colour, linewidths=1.5)
    top.set_ylabel("score")
    top.set_title("Validation score per step", loc="left", fontsize=12)
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
                   ncol=3)
    values = [v for v in line_y + [y for _, ys in points.values() for y in ys] + train_y
              if v is not None]
    if values and 0 <= min(values) and max(values) <= 1:
        top.set_ylim(-0.05, 1.05)  # scores in [0, 1]: keep the full scale for honest gaps
    _style_axes(top)
    if lr_x:
        bottom.step(lr_x, lr_y, where="mid", color="#555555", marker="o", markersize=4,
                    label="scheduled")
    if chosen_x:
        bottom.scatter(chosen_x, chosen_y, color="#f28e2b", zorder=3, s=20, label="chosen")
        bottom.legend(loc="best", fontsize=8, frameon=False)
    bottom.set_ylabel("learning rate\n(edits/step)", fontsize=9)
    bottom.set_xlabel("step")
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.xaxis.get_major_locator().set_params(integer=True)
    _style_axes(bottom)
    _epoch_lines((top, bottom), data.history)
    fig.tight_layout()
    return _png(fig)


def size_plot(data: RunData) -> str:
    """Skill size in tokens after each step, so growth (and its cost per call) is visible."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.8))
    ax = fig.subplots()
    initial = data.skill_tokens().get("initial")
    xs: list[float] = [0.0] if initial is not None else []
    ys: list[float] = [initial] if initial is not None else []
    acc_x, acc_y = [], []
    for row in data.history:
        if row.skill_tokens is not None:
            xs.append(_x(row))
            ys.append(row.skill_tokens)
            if row.made_version:
                acc_x.append(_x(row))
                acc_y.append(row.skill_tokens)
    ax.step(xs, ys, where="post", color="#6a51a3", linewidth=2, label="incumbent skill")
    if acc_x:
        ax.scatter(acc_x, acc_y, color=OUTCOME_COLOURS[ACCEPTED], zorder=3, s=40,
                   label="new version")
    ax.set_ylabel("tokens")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("step")
    ax.set_title("Skill size per step", loc="left", fontsize=12)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if ys:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
                  ncol=2)
    _style_axes(ax)
    _epoch_lines((ax,), data.history)
    fig.tight_layout()
    return _png(fig)
