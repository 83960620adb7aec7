"""The report of a `train --seeds` folder: an index page over the seeds' own reports.

What a user wants first from several seeds is whether they agree: the mean test gain with its
interval and one row per seed; each row links that seed's full report (written alongside, as
`skilltrain report seed-K` would), which holds the curves, lineage and costs of that run. The
rows are re-read from the seed folders, so the page is right even when seeds.json is behind (a
seed that was running when it was last written).
"""

from __future__ import annotations

import os
from pathlib import Path

from skilltrain.files import atomic_write
from skilltrain.report.markup import delta, duration, esc, note, num, table, usd
from skilltrain.report.page import html_page, write_report
from skilltrain.run_reader import RunReader
from skilltrain.seeds import is_seeds_folder, read_seeds, seed_folder, seed_row, summarize
from skilltrain.store import REPORT_FILE

__all__ = ["is_seeds_folder", "render_seeds", "write_seeds_report"]


def _gain_line(gain: dict) -> str:
    if gain.get("mean") is None:
        return note("No seed has a test score yet.")
    ci = gain.get("ci95")
    interval = (f" · 95% interval [{delta(ci[0])}, {delta(ci[1])}] (Student t over "
                f"{gain['n']} seeds)" if ci else " (one seed: no interval)")
    return (f'<p class="why">Mean test gain (best − initial): <b>{delta(gain["mean"])}</b>'
            f"{interval}</p>")


def render_seeds(root: Path, data: dict, links: dict[int, str]) -> str:
    """The index page: the plan, the mean gain and its interval, one row per seed."""
    rows = []
    for r in data["rows"]:
        link = links.get(r["seed"])
        name = f'<a href="{esc(link)}">{esc(r["folder"])}</a>' if link else esc(r["folder"])
        rows.append([name, num(r.get("val_initial")), num(r.get("val_best")),
                     num(r.get("test_initial")), num(r.get("test_best")),
                     delta(r.get("test_gain")), esc(r.get("accepted", "—")),
                     duration(r.get("wall_s")), usd(r.get("cost_usd")), esc(r.get("status"))])
    seeds = table(["seed", "val initial", "val best", "test initial", "test best", "test gain",
                   "accepted", "wall", "cost", "status"], rows, "num", "lrrrrrrrrl")
    pending = [r for r in data["rows"] if r.get("status") not in ("done", "stopped")]
    notes = note(f"{len(pending)} of {data['n']} seeds have not finished: resume with "
                 f"`skilltrain resume {root}`.") if pending else ""
    meta = (f'<dl class="meta"><div><dt>folder</dt><dd>{esc(root)}</dd></div>'
            f"<div><dt>seeds</dt><dd>{esc(data['seeds'][0])}–{esc(data['seeds'][-1])}</dd>"
            f"</div><div><dt>total wall</dt><dd>{duration(data.get('wall_s'))}</dd></div>"
            f"<div><dt>total cost</dt><dd>{usd(data.get('cost_usd'))}</dd></div></dl>")
    body = (f"<header><h1>skilltrain seeds report</h1>{meta}</header>{notes}"
            f'<section id="seeds"><h2>Seeds</h2>{_gain_line(data["test_gain"])}{seeds}'
            '<p class="caption">The same config trained once per seed (batch order, '
            "validation order and sampling follow the seed; the splits do not). Each seed "
            "links its own report.</p></section>")
    return html_page(root, body)


def write_seeds_report(root: Path, out: Path | None = None) -> Path:
    """Write each started seed's report into its folder, then the index page (root/report.html
    or `out`, whose links are made relative to where it is written); return its path."""
    root = Path(root)
    plan = read_seeds(root)
    if plan is None:
        raise FileNotFoundError(f"{root}: not a seeds folder (no seeds.json)")
    first, n = plan["first_seed"], plan["n"]
    data = summarize(first, n, [seed_row(first + k, seed_folder(root, first + k))
                                for k in range(n)])
    path = Path(out) if out is not None else root / REPORT_FILE
    links = {}
    for k in range(n):
        folder = seed_folder(root, first + k)
        if RunReader(folder).is_run():
            written = write_report(folder)
            links[first + k] = os.path.relpath(written, path.parent)
    atomic_write(path, render_seeds(root, data, links))
    return path
