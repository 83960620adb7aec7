"""The report page: its sections in order, its stylesheet, and writing it beside the run.

One self-contained HTML file: inline CSS, plots as data URIs, no scripts and no external
resources (the Content-Security-Policy says so too), so it can be mailed, archived or opened
offline.
"""

from __future__ import annotations

import time
from pathlib import Path

from skilltrain.files import atomic_write
from skilltrain.report.data import RunData, load_run
from skilltrain.report.evidence import prune_section, pruned_from, sealed_test
from skilltrain.report.lineage import lineage_section, rejected_section
from skilltrain.report.markup import (
    badge,
    delta,
    duration,
    esc,
    integer,
    note,
    num,
    sub,
    table,
    usd,
)
from skilltrain.report.plots import size_plot, validation_plot
from skilltrain.store import BEST_SKILL_FILE, CONFIG_FILE, SUMMARY_FILE


def _header(data: RunData) -> str:
    s, start = data.summary or {}, data.start
    if data.summary is not None:
        status = f"stopped: {s['stopped']}" if s.get("stopped") else "finished"
    else:
        status = "in progress or interrupted"
    meta = [("run folder", esc(data.root)), ("status", esc(status))]
    for key in ("target", "optimizer", "gate"):
        if start.get(key):
            meta.append((key, esc(start[key])))
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in meta)
    notes = "".join(note(n) for n in data.notes)
    return (f"<header><h1>skilltrain report</h1><dl class=\"meta\">{dl}</dl></header>{notes}"
            + _before_after(data) + _figures(data))


def _before_after(data: RunData) -> str:
    s = data.summary
    if s is None:
        return ""
    val, test = s.get("val") or {}, s.get("test") or {}
    rows = [
        ["validation", num(val.get("initial")), num(val.get("best")), "—",
         delta(sub(val.get("best"), val.get("initial")))],
        ["test", num(test.get("initial")), num(test.get("best")), num(test.get("final")),
         delta(sub(test.get("best"), test.get("initial")))],
    ]
    ba = table(["score", "initial", "best", "final", "Δ best − initial"], rows, "ba", "lrrrr")
    return (f'<section id="before-after"><h2>Before and after</h2>{ba}{sealed_test(data)}'
            "</section>")


def _figures(data: RunData) -> str:
    """The key figures as small cards: counts, cost, time, failures, size, splits."""
    s, state = data.summary or {}, data.state or {}
    steps = data.step_counts()
    infra = data.infra_failures()
    by_kind = ", ".join(f"{esc(k)} {integer(v)}" for k, v in (infra.get("by_kind") or {}).items())
    retried = sum((infra.get("retried") or {}).values())
    tokens = data.skill_tokens()
    sizes = s.get("sizes") or {k: data.start.get(k) for k in ("train", "val", "test")}
    cards = [
        ("steps", integer(steps.get("total")),
         f'<span class="up">{integer(steps.get("accepted"))} accepted</span> · '
         f'<span class="down">{integer(steps.get("rejected"))} rejected</span> · '
         f'{integer(steps.get("skipped"))} skipped'),
        ("cost", usd(s.get("cost_usd")),
         f"billed {usd(s.get('billed_cost_usd'))}" if "billed_cost_usd" in s else ""),
        ("wall time", duration(s.get("wall_s", state.get("wall_s"))), ""),
        ("infra failures", integer(infra.get("total")) if infra else "—",
         (by_kind or "none") + (f" · {retried} retried" if retried else "") if infra else ""),
        ("skill size", f"{integer(tokens.get('initial'))} → {integer(tokens.get('best'))}",
         "tokens, initial → best" + (f" (v{s['best_version']:04d})"
                                     if isinstance(s.get("best_version"), int) else "")
         + pruned_from(data)),
        ("splits", " / ".join(integer(sizes.get(k)) for k in ("train", "val", "test")),
         "train / val / test items"),
    ]
    html_cards = "".join(f'<div class="card"><div class="label">{label}</div>'
                         f'<div class="big">{big}</div><div class="small">{small}</div></div>'
                         for label, big, small in cards)
    return f'<section id="figures"><div class="cards">{html_cards}</div></section>'


def _plots(data: RunData) -> str:
    if not data.history:
        return ('<section id="plots"><h2>Training curves</h2>'
                + note("No steps yet: nothing to plot.") + "</section>")
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
        return title + note("No model usage recorded yet.") + "</section>"
    priced = all(isinstance(u.get("cost_usd"), (int, float)) for u in stages.values())
    total = sum(u.get("cost_usd") or 0 for u in stages.values()) if priced else None
    rows, sums = [], {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for key, u in sorted(stages.items()):
        role, _, stage = key.partition("/")
        for k in sums:
            sums[k] += u.get(k) or 0
        share = f"{100 * (u.get('cost_usd') or 0) / total:.0f}%" if total else "—"
        rows.append([esc(role), esc(stage or "—"), integer(u.get("calls")),
                     integer(u.get("prompt_tokens")), integer(u.get("completion_tokens")),
                     usd(u.get("cost_usd")), share])
    rows.append(["<b>total</b>", "", integer(sums["calls"]), integer(sums["prompt_tokens"]),
                 integer(sums["completion_tokens"]), f"<b>{usd(total)}</b>", ""])
    costs = table(["role", "stage", "calls", "prompt tokens", "completion tokens", "cost",
                   "share"], rows, "num", "llrrrrr")
    unpriced = "" if priced else note("Costs are computed when the run ends; tokens so far.")
    return title + unpriced + costs + "</section>"


def _by_type(data: RunData) -> str:
    title = '<section id="by-type"><h2>Test score per task type</h2>'
    by = (data.summary or {}).get("test_by_type") or {}
    if not any(by.values()):
        why = ("the run has no test split, or stopped before testing" if data.summary
               else f"test results appear in {SUMMARY_FILE} when the run ends")
        return title + note(f"No per-type test scores: {why}.") + "</section>"
    kinds = sorted({k for scores in by.values() for k in (scores or {})})
    rows = []
    for kind in kinds:
        i, b, f = ((by.get(n) or {}).get(kind) for n in ("initial", "best", "final"))
        rows.append([esc(kind), num(i), num(b), num(f), delta(sub(b, i))])
    types = table(["type", "initial", "best", "final", "Δ best − initial"], rows, "num",
                  "lrrrr")
    return title + types + "</section>"


def _steps_table(data: RunData) -> str:
    if not data.history:
        return ""
    rows = [[esc(r.id), integer(r.lr), num(r.train_score),
             f'{integer(r.proposed)} / {integer(r.selected)} / {integer(r.applied)}',
             badge(r.outcome), num(r.val_candidate), num(r.val_incumbent),
             integer(r.skill_tokens), duration(r.wall_s)] for r in data.history]
    steps = table(["step", "lr", "train", "proposed / selected / applied", "outcome",
                   "val candidate", "val incumbent", "skill tokens", "wall"], rows, "num steps",
                  "lrrrlrrrr")
    return f'<section id="steps"><h2>All steps</h2>{steps}</section>'


def _appendix(data: RunData) -> str:
    parts = []
    best = data.best_skill_text()
    if best is not None:
        shipped = data.reader.best_skill_path  # a package: best_skill/, shown by its SKILL.md
        name = f"{shipped.name}/SKILL.md" if shipped.is_dir() else BEST_SKILL_FILE
        parts.append(f'<details><summary>Best skill ({esc(name)})</summary>'
                     f'<pre>{esc(best)}</pre></details>')
    if data.config_text:
        parts.append(f'<details><summary>Run configuration ({CONFIG_FILE})</summary>'
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
    body = (_header(data) + _plots(data) + _costs(data) + _by_type(data) + lineage_section(data)
            + prune_section(data) + rejected_section(data) + _steps_table(data) + _appendix(data))
    return html_page(data.root, body)


def html_page(root: Path, body: str) -> str:
    """The page around a body: stylesheet, the policy that forbids scripts and fetches."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">"
            f"<title>skilltrain report: {esc(root.name)}</title>"
            f"<style>{CSS}</style></head><body><main>{body}"
            f'<p class="muted">Generated {esc(stamp)} from {esc(root)}.</p>'
            "</main></body></html>\n")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write `report.html` into the run folder (or to `out`) and return its path. Everything is
    read and rendered before anything is written, so a bad run file leaves no half report."""
    data = load_run(Path(run_dir))
    path = Path(out) if out is not None else data.reader.report_path
    atomic_write(path, render_report(data))
    return path
