"""The report's HTML building blocks: escaping, number formats, tables, badges, notes, diffs.

Everything that came from a model (edits, rationales, skill text, gate reasons) passes through
`esc` before it is put in the page: a skill is model-written text and must never be able to run
in the reader's browser. A value that is not what a run writes (an older or newer run folder, a
hand-edited file) is shown as a dash or as escaped text, never an error.
"""

from __future__ import annotations

import difflib
import html
import json
import math
from collections.abc import Iterable
from typing import Any

from skilltrain.report.plots import outcome_colour


def esc(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return "—" if value is None else esc(value)
    return f"{value:.{digits}f}"


def delta(value: Any, digits: int = 3) -> str:
    """A signed difference, coloured: green when it went up, red when down."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    cls = "up" if value > 1e-12 else "down" if value < -1e-12 else "flat"
    return f'<span class="{cls}">{value:+.{digits}f}</span>'


def integer(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else \
        ("—" if value is None else esc(value))


def usd(value: Any) -> str:
    return f"${value:,.4f}" if isinstance(value, (int, float)) else "—"


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m" if hours else f"{minutes} m {sec:02d} s"


def sub(a: Any, b: Any) -> float | None:
    """a − b when both are numbers, else None (shown as a dash)."""
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return round(a - b, 6) if ok else None


def table(head: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "",
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


def badge(outcome: Any) -> str:
    """A step's outcome as a pill in the colour the plots give it."""
    text = str(outcome or "—")
    return f'<span class="badge" style="background:{outcome_colour(text)}">{esc(text)}</span>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def value(data: Any, limit: int = 1500) -> str:
    """Any JSON value as escaped HTML; nested ones as compact JSON, cut to `limit` characters."""
    if isinstance(data, (dict, list)):
        text = json.dumps(data, ensure_ascii=False, default=str)
        if len(text) > limit:
            text = text[:limit] + f" … ({len(text) - limit} more characters)"
        return f"<code>{esc(text)}</code>"
    if isinstance(data, float):
        return f"{data:.4g}"
    return esc(data)


def diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff with added/removed lines coloured; each line is escaped on its own."""
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name,
                                      n=3, lineterm=""))
    if not lines:
        return note("The text did not change.")
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
