"""The HTML report of one run folder: what a user opens to see whether training helped, and why.

`write_report(run_dir)` reads only the files the run wrote (summary.json, state.json,
events.jsonl, skills/, steps/) and writes one self-contained `report.html`: inline CSS, plots as
base64 PNG data URIs, no scripts and no external resources, so it can be mailed, archived or
opened offline. Everything that came from a model (edits, rationales, skill text, gate reasons)
is HTML-escaped: a skill is model-written text and must never be able to run in the reader's
browser.

A run folder may be partial (still running, interrupted, or stopped before any step); the report
then says what is missing instead of failing, because a half-finished run is exactly when a user
wants to look.
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skilltrain.run_files import (
    read_events,
    read_json,
    read_text,
    state_shape,
    step_file_shape,
    summary_shape,
)
from skilltrain.skill import Skill
from skilltrain.store import atomic_write

OUTCOME_COLOURS = {"accepted": "#1a9850", "rejected": "#d73027", "skipped": "#9e9e9e",
                   "forced": "#f28e2b"}
DEFAULT_COLOUR = "#7b3294"  # failed slow updates and anything newer than this module


# -- reading the run folder ------------------------------------------------------------------

@dataclass
class RunData:
    """Everything the report needs, read once; missing files become None or empty, plus a note."""

    root: Path
    summary: dict | None = None
    state: dict | None = None
    config_text: str | None = None
    events: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def start(self) -> dict:
        """The `start` event: model names and split sizes, known even before the first step."""
        return next((e for e in self.events if e.get("event") == "start"), {})

    def step_file(self, step_id: str, name: str) -> dict | None:
        return read_json(self.root / "steps" / step_id / name, step_file_shape(name))

    def skill_text(self, number: int) -> str | None:
        return read_text(self.root / "skills" / f"v{number:04d}.md")

    def skill_tokens(self) -> dict:
        """Initial and best skill size; before summary.json exists, measured from skills/."""
        tokens = (self.summary or {}).get("skill_tokens")
        if tokens:
            return tokens
        best = ((self.state or {}).get("best") or {}).get("number")
        out = {}
        for name, number in (("initial", 0), ("best", best)):
            text = self.skill_text(number) if isinstance(number, int) else None
            out[name] = Skill(text).tokens if text is not None else None
        return out

    def infra_failures(self) -> dict:
        """Infrastructure failures; before summary.json exists, from the checkpointed meter."""
        if self.summary is not None:
            return self.summary.get("infra_failures") or {}
        meter = (self.state or {}).get("meter")
        if not isinstance(meter, dict):
            return {}
        failures = meter.get("failures") or {}
        return {"total": sum(failures.values()), "by_kind": failures,
                "retried": meter.get("retries") or {}}

    def usage_by_stage(self) -> dict:
        """Usage per role/stage; before summary.json exists, tokens only (prices are applied at
        the end of the run, so the cost is unknown)."""
        stages = (self.summary or {}).get("usage_by_stage")
        if stages or self.summary is not None:
            return stages or {}
        rows = ((self.state or {}).get("meter") or {}).get("usage") or []
        return {f"{r[0]}/{r[1]}": {**r[2], "cost_usd": None}
                for r in rows if isinstance(r, list) and len(r) == 3 and isinstance(r[2], dict)}


def load_run(run_dir: Path) -> RunData:
    """Read a run folder: FileNotFoundError when it is not one at all, RunFileError (one line
    naming the file and field) when a file in it is not what a run writes."""
    root = Path(run_dir)
    markers = ("config.yaml", "events.jsonl", "state.json", "summary.json")
    if not root.is_dir() or not any((root / m).exists() for m in markers):
        raise FileNotFoundError(f"{root}: not a run folder (no config.yaml, events.jsonl, "
                                "state.json or summary.json)")
    data = RunData(root=root, summary=read_json(root / "summary.json", summary_shape()),
                   state=read_json(root / "state.json", state_shape()),
                   events=read_events(root / "events.jsonl"),
                   config_text=read_text(root / "config.yaml"))
    if data.state is not None:
        data.history = [r for r in data.state.get("history") or [] if isinstance(r, dict)]
        data.versions = list(data.state.get("versions") or [])
    else:
        # No checkpoint yet: the step_end events carry the same rows.
        data.history = [{k: v for k, v in e.items() if k not in ("time", "event")}
                        for e in data.events if e.get("event") == "step_end"]
        data.notes.append("state.json is missing: steps are taken from events.jsonl and the "
                          "skill lineage cannot be shown.")
    if data.summary is None:
        stopped = (data.state or {}).get("stopped")
        why = f"the run stopped ({stopped}) before" if stopped else \
            "the run is still going, or was interrupted, before"
        data.notes.append(f"summary.json is missing: {why} its final evaluation. The before/after "
                          "scores, costs and the per-type table appear once it finishes.")
    if not data.history:
        data.notes.append("No training step has completed yet.")
    return data


# -- formatting ------------------------------------------------------------------------------

def esc(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return "—" if value is None else esc(value)
    return f"{value:.{digits}f}"


def _delta(value: Any, digits: int = 3) -> str:
    """A signed difference, coloured: green when it went up, red when down."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    cls = "up" if value > 1e-12 else "down" if value < -1e-12 else "flat"
    return f'<span class="{cls}">{value:+.{digits}f}</span>'


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else \
        ("—" if value is None else esc(value))


def _usd(value: Any) -> str:
    return f"${value:,.4f}" if isinstance(value, (int, float)) else "—"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m" if hours else f"{minutes} m {sec:02d} s"


def _sub(a: Any, b: Any) -> float | None:
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return round(a - b, 6) if ok else None


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "",
           align: str = "") -> str:
    """Cells are already-rendered HTML; callers escape data before it gets here.

    `align` has one letter per column ("l" or "r"; missing ones are left-aligned), so numbers
    line up on their digits.
    """
    def cell(tag: str, i: int, content: str) -> str:
        right = ' class="r"' if align[i:i + 1] == "r" else ""
        return f"<{tag}{right}>{content}</{tag}>"

    h = "".join(cell("th", i, c) for i, c in enumerate(head))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _badge(outcome: Any) -> str:
    text = str(outcome or "—")
    colour = OUTCOME_COLOURS.get(text, DEFAULT_COLOUR)
    return f'<span class="badge" style="background:{colour}">{esc(text)}</span>'


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _value(value: Any, limit: int = 1500) -> str:
    """Any JSON value as escaped HTML; nested ones as compact JSON, cut to `limit` characters."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str)
        if len(text) > limit:
            text = text[:limit] + f" … ({len(text) - limit} more characters)"
        return f"<code>{esc(text)}</code>"
    if isinstance(value, float):
        return f"{value:.4g}"
    return esc(value)


# -- plots -----------------------------------------------------------------------------------

def _png(fig: Any) -> str:
    """Render a matplotlib Figure with the Agg canvas (no pyplot, no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _x(row: dict) -> float:
    """Plot position: an epoch boundary sits between the last step of its epoch and the next."""
    step = row.get("step") or 0
    return step - 0.5 if row.get("kind") == "epoch_boundary" else float(step)


def _initial_val(data: RunData) -> float | None:
    val = ((data.summary or {}).get("val") or {}).get("initial")
    if val is not None:
        return val
    return next((r["val_incumbent"] for r in data.history
                 if isinstance(r.get("val_incumbent"), (int, float))), None)


def _style_axes(ax: Any) -> None:
    ax.grid(True, color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _epoch_lines(axes: Iterable[Any], history: list[dict]) -> None:
    for row in history:
        if row.get("kind") == "epoch_boundary":
            for ax in axes:
                ax.axvline(_x(row), color="#bbbbbb", linestyle=":", linewidth=1)


def validation_plot(data: RunData) -> str:
    """Validation score per step: the incumbent as a line, each candidate as a coloured point,
    and the learning rate (edit budget) underneath on the same step axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.2))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1]})
    incumbent = _initial_val(data)
    line_x, line_y = [0.0], [incumbent]
    points: dict[str, tuple[list[float], list[float]]] = {}
    train_x, train_y, lr_x, lr_y, chosen_x, chosen_y = [], [], [], [], [], []
    for row in data.history:
        x, outcome = _x(row), str(row.get("outcome", ""))
        cand, inc = row.get("val_candidate"), row.get("val_incumbent")
        if isinstance(inc, (int, float)):
            incumbent = inc
        y = cand if isinstance(cand, (int, float)) else incumbent
        if y is not None:
            xs, ys = points.setdefault(outcome, ([], []))
            xs.append(x)
            ys.append(y)
        if outcome == "accepted" and isinstance(cand, (int, float)):
            incumbent = cand
        line_x.append(x)
        line_y.append(incumbent)
        if isinstance(row.get("train_score"), (int, float)):
            train_x.append(x)
            train_y.append(row["train_score"])
        if isinstance(row.get("lr"), (int, float)):
            lr_x.append(x)
            lr_y.append(row["lr"])
        if isinstance(row.get("lr_chosen"), (int, float)):
            chosen_x.append(x)
            chosen_y.append(row["lr_chosen"])
    pairs = [(x, y) for x, y in zip(line_x, line_y) if y is not None]
    if pairs:
        top.step([p[0] for p in pairs], [p[1] for p in pairs], where="post", color="#2c7fb8",
                 linewidth=2, label="incumbent (validation)", zorder=2)
    if train_x:
        top.plot(train_x, train_y, color="#9ecae1", linestyle="--", marker=".", linewidth=1,
                 label="train batch score", zorder=1)
    order = ["accepted", "rejected", "skipped", "forced"]
    for outcome in order + sorted(set(points) - set(order)):
        if outcome not in points:
            continue
        xs, ys = points[outcome]
        colour = OUTCOME_COLOURS.get(outcome, DEFAULT_COLOUR)
        hollow = outcome == "skipped"
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
        if isinstance(row.get("skill_tokens"), (int, float)):
            xs.append(_x(row))
            ys.append(row["skill_tokens"])
            if row.get("outcome") in ("accepted", "forced"):
                acc_x.append(_x(row))
                acc_y.append(row["skill_tokens"])
    ax.step(xs, ys, where="post", color="#6a51a3", linewidth=2, label="incumbent skill")
    if acc_x:
        ax.scatter(acc_x, acc_y, color=OUTCOME_COLOURS["accepted"], zorder=3, s=40,
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


# -- sections --------------------------------------------------------------------------------

def _header(data: RunData) -> str:
    s, state, start = data.summary or {}, data.state or {}, data.start
    if data.summary is not None:
        status = f"stopped: {s['stopped']}" if s.get("stopped") else "finished"
    else:
        status = "in progress or interrupted"
    meta = [("run folder", esc(data.root)), ("status", esc(status))]
    for key in ("target", "optimizer", "gate"):
        if start.get(key):
            meta.append((key, esc(start[key])))
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in meta)
    notes = "".join(_note(n) for n in data.notes)
    return (f"<header><h1>skilltrain report</h1><dl class=\"meta\">{dl}</dl></header>{notes}"
            + _before_after(data) + _figures(data, s, state))


def _before_after(data: RunData) -> str:
    s = data.summary
    if s is None:
        return ""
    val, test = s.get("val") or {}, s.get("test") or {}
    rows = [
        ["validation", _num(val.get("initial")), _num(val.get("best")), "—",
         _delta(_sub(val.get("best"), val.get("initial")))],
        ["test", _num(test.get("initial")), _num(test.get("best")), _num(test.get("final")),
         _delta(_sub(test.get("best"), test.get("initial")))],
    ]
    table = _table(["score", "initial", "best", "final", "Δ best − initial"], rows, "ba",
                   "lrrrr")
    return f'<section id="before-after"><h2>Before and after</h2>{table}</section>'


def _figures(data: RunData, s: dict, state: dict) -> str:
    """The key figures as small cards: counts, cost, time, failures, size, splits."""
    steps = s.get("steps")
    if steps is None:
        counts = {o: sum(1 for r in data.history if r.get("outcome") == o)
                  for o in ("accepted", "rejected", "skipped")}
        steps = {"total": state.get("global_step", len(data.history)), **counts}
    infra = data.infra_failures()
    by_kind = ", ".join(f"{esc(k)} {_int(v)}" for k, v in (infra.get("by_kind") or {}).items())
    retried = sum((infra.get("retried") or {}).values())
    tokens = data.skill_tokens()
    sizes = s.get("sizes") or {k: data.start.get(k) for k in ("train", "val", "test")}
    cards = [
        ("steps", _int(steps.get("total")),
         f'<span class="up">{_int(steps.get("accepted"))} accepted</span> · '
         f'<span class="down">{_int(steps.get("rejected"))} rejected</span> · '
         f'{_int(steps.get("skipped"))} skipped'),
        ("cost", _usd(s.get("cost_usd")),
         f"billed {_usd(s.get('billed_cost_usd'))}" if "billed_cost_usd" in s else ""),
        ("wall time", _duration(s.get("wall_s", state.get("wall_s"))), ""),
        ("infra failures", _int(infra.get("total")) if infra else "—",
         (by_kind or "none") + (f" · {retried} retried" if retried else "") if infra else ""),
        ("skill size", f"{_int(tokens.get('initial'))} → {_int(tokens.get('best'))}",
         "tokens, initial → best" + (f" (v{s['best_version']:04d})"
                                     if isinstance(s.get("best_version"), int) else "")),
        ("splits", " / ".join(_int(sizes.get(k)) for k in ("train", "val", "test")),
         "train / val / test items"),
    ]
    html_cards = "".join(f'<div class="card"><div class="label">{label}</div>'
                         f'<div class="big">{big}</div><div class="small">{small}</div></div>'
                         for label, big, small in cards)
    return f'<section id="figures"><div class="cards">{html_cards}</div></section>'


def _plots(data: RunData) -> str:
    if not data.history:
        return ('<section id="plots"><h2>Training curves</h2>'
                + _note("No steps yet: nothing to plot.") + "</section>")
    return ('<section id="plots"><h2>Training curves</h2>'
            f'<img alt="Validation score per step" src="{validation_plot(data)}">'
            '<p class="caption">Points are candidates scored by the gate (green accepted, red '
            'rejected, hollow grey skipped: nothing to gate). The blue line is the incumbent. '
            'Dotted verticals are epoch boundaries (slow update).</p>'
            f'<img alt="Skill size per step" src="{size_plot(data)}"></section>')


def _costs(data: RunData) -> str:
    title = '<section id="costs"><h2>Cost per stage</h2>'
    stages = data.usage_by_stage()
    if not stages:
        return title + _note("No model usage recorded yet.") + "</section>"
    priced = all(isinstance(u.get("cost_usd"), (int, float)) for u in stages.values())
    total = sum(u.get("cost_usd") or 0 for u in stages.values()) if priced else None
    rows, sums = [], {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for key, u in sorted(stages.items()):
        role, _, stage = key.partition("/")
        for k in sums:
            sums[k] += u.get(k) or 0
        share = f"{100 * (u.get('cost_usd') or 0) / total:.0f}%" if total else "—"
        rows.append([esc(role), esc(stage or "—"), _int(u.get("calls")),
                     _int(u.get("prompt_tokens")), _int(u.get("completion_tokens")),
                     _usd(u.get("cost_usd")), share])
    rows.append(["<b>total</b>", "", _int(sums["calls"]), _int(sums["prompt_tokens"]),
                 _int(sums["completion_tokens"]), f"<b>{_usd(total)}</b>", ""])
    table = _table(["role", "stage", "calls", "prompt tokens", "completion tokens", "cost",
                    "share"], rows, "num", "llrrrrr")
    note = "" if priced else _note("Costs are computed when the run ends; tokens so far.")
    return title + note + table + "</section>"


def _by_type(data: RunData) -> str:
    title = '<section id="by-type"><h2>Test score per task type</h2>'
    by = (data.summary or {}).get("test_by_type") or {}
    if not any(by.values()):
        why = ("the run has no test split, or stopped before testing" if data.summary
               else "test results appear in summary.json when the run ends")
        return title + _note(f"No per-type test scores: {why}.") + "</section>"
    kinds = sorted({k for scores in by.values() for k in (scores or {})})
    rows = []
    for kind in kinds:
        i, b, f = ((by.get(n) or {}).get(kind) for n in ("initial", "best", "final"))
        rows.append([esc(kind), _num(i), _num(b), _num(f), _delta(_sub(b, i))])
    table = _table(["type", "initial", "best", "final", "Δ best − initial"], rows, "num",
                   "lrrrr")
    return title + table + "</section>"


def _diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff with added/removed lines coloured; each line is escaped on its own."""
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name,
                                      n=3, lineterm=""))
    if not lines:
        return _note("The text did not change.")
    out = []
    for line in lines:
        if line.startswith(("---", "+++")):
            cls = "file"
        elif line.startswith("@@"):
            cls = "hunk"
        else:
            cls = {"+": "add", "-": "del"}.get(line[:1], "ctx")
        out.append(f'<div class="{cls}">{esc(line) or "&nbsp;"}</div>')
    return f'<div class="diff">{"".join(out)}</div>'


def _edits(edits: list[dict]) -> str:
    if not edits:
        return ""
    rows = []
    for e in edits:
        target = f'<div class="muted">at: <code>{esc(e["target"])}</code></div>' \
            if e.get("target") else ""
        rows.append([f'<code class="op">{esc(e.get("op"))}</code>',
                     f'<div class="edit">{esc(e.get("content"))}</div>{target}',
                     esc(e.get("rationale")), _int(e.get("support")), esc(e.get("source")),
                     esc(e.get("status"))])
    return _table(["op", "edit", "rationale", "support", "source", "status"], rows, "edits",
                  "lllrll")


def _gate(gate: dict | None, row: dict) -> str:
    """The gate's evidence for one decision: scores, items, reason and the rule's own details."""
    if not gate:
        if row.get("outcome") == "forced":
            return _note("Accepted without the gate (forced slow update).")
        return _note("No gate record for this step.")
    cand, inc = gate.get("candidate_score"), gate.get("incumbent_score")
    facts = [("rule", esc(gate.get("rule"))),
             ("candidate", _num(cand, 4)), ("incumbent", _num(inc, 4)),
             ("Δ", _delta(_sub(cand, inc), 4)), ("items used", _int(gate.get("items_used"))),
             ("new evaluations", _int(gate.get("new_evaluations"))),
             ("excluded", _int(gate.get("excluded"))),
             ("stopped early", "yes" if gate.get("stopped_early") else "no")]
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    reason = f'<p class="reason"><b>Reason:</b> {esc(gate.get("reason"))}</p>' \
        if gate.get("reason") else ""
    evidence = gate.get("evidence")
    ev = ""
    if isinstance(evidence, dict) and evidence:
        ev = "".join(f"<div><dt>{esc(k)}</dt><dd>{_value(v)}</dd></div>"
                     for k, v in evidence.items())
        ev = f'<dl class="facts evidence">{ev}</dl>'
    elif evidence:
        ev = f"<p>{_value(evidence)}</p>"
    return f'<div class="gate"><h4>Gate</h4><dl class="facts">{dl}</dl>{reason}{ev}</div>'


def _slow_update(data: RunData, step_id: str) -> str:
    slow = data.step_file(step_id, "slow_update.json")
    if not slow:
        return ""
    return (f'<div class="slow"><h4>Slow update</h4><p class="muted">{esc(slow.get("analysis"))}'
            f'</p><div class="edit">{esc(slow.get("guidance"))}</div></div>')


def _lineage(data: RunData) -> str:
    title = ('<section id="lineage"><h2>Skill lineage</h2><p class="caption">Each accepted '
             'version: its diff against its parent, the edits that made it, and the gate\'s '
             'evidence.</p>')
    if not data.versions:
        return title + _note("No version record (state.json missing).") + "</section>"
    rows_by_version = {r["version"]: r for r in data.history if "version" in r}
    best = (data.summary or {}).get("best_version",
                                    ((data.state or {}).get("best") or {}).get("number"))
    parts = []
    for prev, version in zip(data.versions, data.versions[1:]):
        number = version.get("number")
        row = rows_by_version.get(number, {})
        step_id = str(row.get("id", ""))
        old, new = data.skill_text(prev.get("number", 0)), data.skill_text(number)
        old_name, new_name = f"v{prev.get('number', 0):04d}.md", f"v{number:04d}.md"
        diff = _diff(old, new, old_name, new_name) if old is not None and new is not None \
            else _note(f"Skill file {old_name} or {new_name} is missing.")
        sel = data.step_file(step_id, "selection.json") if step_id else None
        edits = _edits([e for e in (sel or {}).get("edits") or [] if isinstance(e, dict)])
        gate = data.step_file(step_id, "gate.json") if step_id else None
        outcome = row.get("outcome", "accepted" if version.get("gated", True) else "forced")
        star = ' <span class="best">★ best</span>' if number == best else ""
        parts.append(
            f'<article class="version"><h3>{esc(new_name)} {_badge(outcome)}{star}'
            f'<span class="muted"> from {esc(old_name)} at step {_int(version.get("step"))} '
            f'({esc(step_id or "?")})</span></h3>'
            f'{diff}{edits}{_slow_update(data, step_id) if step_id else ""}'
            f'{_gate(gate, row)}</article>')
    if not parts:
        parts.append(_note("No edit has been accepted: the skill is still v0000."))
    final = next((e for e in reversed(data.events) if e.get("event") == "final_gate"), None)
    if final:
        verdict = "accepted: the final skill is shipped" if final.get("accepted") else \
            "rejected: the best gated version is shipped"
        parts.append(f'<p><b>Final gate</b> (final incumbent against best): {esc(verdict)}. '
                     f'{esc(final.get("reason"))}</p>')
    return title + "".join(parts) + "</section>"


def _rejected(data: RunData) -> str:
    title = '<section id="rejected"><h2>Rejected and skipped steps</h2>'
    rows = []
    for r in data.history:
        if r.get("outcome") in ("accepted", "forced", "skipped") or "outcome" not in r:
            continue
        step_id = str(r.get("id", ""))
        sel = data.step_file(step_id, "selection.json") or {}
        slow = data.step_file(step_id, "slow_update.json") or {}
        edits = "".join(f'<div class="edit small-edit">{esc(e.get("content"))}</div>'
                        f'<div class="muted why">{esc(e.get("rationale"))}</div>'
                        for e in sel.get("edits") or [] if isinstance(e, dict))
        if not edits and slow.get("guidance"):
            edits = f'<div class="edit small-edit">{esc(slow["guidance"])}</div>'
        why = r.get("gate_reason") or r.get("reason")
        reason = f'<div class="gate-why"><b>gate:</b> {esc(why)}</div>' if why else ""
        rows.append([esc(step_id), _badge(r.get("outcome")),
                     f'{_num(r.get("val_incumbent"))} → {_num(r.get("val_candidate"))}',
                     _delta(_sub(r.get("val_candidate"), r.get("val_incumbent"))),
                     _int(r.get("gate_items")),
                     (edits or '<span class="muted">—</span>') + reason])
    body = _table(["step", "outcome", "val", "Δ", "items", "edits and the gate's reason"], rows,
                  "rejected", "llrrrl") if rows else _note("No candidate was rejected.")
    skipped: dict[str, list[str]] = {}
    for r in data.history:
        if r.get("outcome") == "skipped":
            skipped.setdefault(str(r.get("reason") or "no reason given"), []).append(
                str(r.get("id", r.get("step"))))
    skip = "".join(f'<p class="skipped"><b>Skipped</b> {esc(", ".join(ids))}: {esc(reason)}</p>'
                   for reason, ids in skipped.items())
    return title + body + skip + "</section>"


def _steps_table(data: RunData) -> str:
    if not data.history:
        return ""
    rows = [[esc(r.get("id")), _int(r.get("lr")), _num(r.get("train_score")),
             f'{_int(r.get("proposed"))} / {_int(r.get("selected"))} / {_int(r.get("applied"))}',
             _badge(r.get("outcome")), _num(r.get("val_candidate")), _num(r.get("val_incumbent")),
             _int(r.get("skill_tokens")), _duration(r.get("wall_s"))] for r in data.history]
    table = _table(["step", "lr", "train", "proposed / selected / applied", "outcome",
                    "val candidate", "val incumbent", "skill tokens", "wall"], rows, "num steps",
                   "lrrrlrrrr")
    return f'<section id="steps"><h2>All steps</h2>{table}</section>'


def _appendix(data: RunData) -> str:
    parts = []
    best = read_text(data.root / "best_skill.md")
    if best is not None:
        parts.append(f'<details><summary>Best skill (best_skill.md)</summary>'
                     f'<pre>{esc(best)}</pre></details>')
    if data.config_text:
        parts.append(f'<details><summary>Run configuration (config.yaml)</summary>'
                     f'<pre>{esc(data.config_text)}</pre></details>')
    return f'<section id="appendix">{"".join(parts)}</section>' if parts else ""


CSS = """
*{box-sizing:border-box}
body{font:15px/1.5 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif;
 color:#222;background:#f5f6f8;margin:0}
main{max-width:1120px;margin:0 auto;padding:24px 32px 48px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 8px}h2{font-size:19px;margin:32px 0 10px;padding-bottom:4px;
 border-bottom:2px solid #e3e6ea}h3{font-size:16px;margin:0 0 10px}h4{margin:12px 0 6px;
 font-size:14px}
dl.meta,dl.facts{display:flex;flex-wrap:wrap;gap:4px 22px;margin:0}
dl.meta div,dl.facts div{display:flex;gap:6px}dt{color:#666}dd{margin:0;font-weight:600}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 10px;text-align:left;vertical-align:top}
thead th{background:#f0f2f5;font-weight:600}
table.num td,table.ba td{font-variant-numeric:tabular-nums}
th.r,td.r{text-align:right}
table.ba{font-size:16px}table.ba td.r{min-width:90px}table.ba td:first-child{font-weight:600}
.why{margin:0 0 8px 2px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:12px;margin-top:14px}
.card{border:1px solid #e3e6ea;border-radius:8px;padding:10px 14px;background:#fafbfc}
.card .label{color:#666;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .big{font-size:22px;font-weight:650}.card .small{font-size:13px;color:#555}
.up{color:#1a7f37;font-weight:600}.down{color:#c62828;font-weight:600}.flat{color:#666}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;margin:10px 0}
.caption,.muted{color:#666;font-size:13px}
img{max-width:100%;display:block;margin:8px 0}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:0 8px;font-size:12px;
 font-weight:600;vertical-align:middle}
.best{color:#b8860b;font-size:13px;margin-left:4px}
article.version{border:1px solid #e3e6ea;border-radius:8px;padding:14px 16px;margin:14px 0}
.diff{font:13px/1.45 "DejaVu Sans Mono",Menlo,Consolas,monospace;border:1px solid #e3e6ea;
 border-radius:6px;overflow:hidden}
.diff div{white-space:pre-wrap;word-break:break-word;padding:0 10px}
.diff .add{background:#e6ffec;color:#116329}.diff .del{background:#ffebe9;color:#a40e26}
.diff .hunk{background:#eef4ff;color:#4462a0}.diff .file{background:#f6f8fa;color:#666}
.edit{white-space:pre-wrap;font:13px/1.4 "DejaVu Sans Mono",Menlo,Consolas,monospace;
 background:#f6f8fa;border-radius:4px;padding:4px 8px}
.small-edit{margin:2px 0 6px}
table.edits,table.rejected{width:100%}
.gate{background:#f8fafc;border:1px solid #e3e6ea;border-radius:6px;padding:4px 12px 8px;
 margin-top:10px}
.reason{margin:6px 0}dl.evidence{font-size:13px}dl.evidence dd{font-weight:500}
table.rejected td:nth-child(-n+4){white-space:nowrap}.gate-why{font-size:13px;color:#444}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px;
 word-break:break-word}
pre{white-space:pre-wrap;background:#f6f8fa;padding:10px;border-radius:6px;font-size:13px}
code.op{white-space:nowrap;word-break:normal}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
"""


def render_report(data: RunData) -> str:
    """The whole page as one string; no scripts, no external resources."""
    body = (_header(data) + _plots(data) + _costs(data) + _by_type(data) + _lineage(data)
            + _rejected(data) + _steps_table(data) + _appendix(data))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">"
            f"<title>skilltrain report: {esc(data.root.name)}</title>"
            f"<style>{CSS}</style></head><body><main>{body}"
            f'<p class="muted">Generated {esc(stamp)} from {esc(data.root)}.</p>'
            "</main></body></html>\n")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write `report.html` into the run folder (or to `out`) and return its path."""
    data = load_run(Path(run_dir))
    path = Path(out) if out is not None else data.root / "report.html"
    atomic_write(path, render_report(data))
    return path
