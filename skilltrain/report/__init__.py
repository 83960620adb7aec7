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

The package: `data` reads the run (through `skilltrain.run_reader`) and computes the numbers,
`plots` draws the figures, `markup` holds the HTML building blocks, `lineage` the sections on
what changed and why, and `page` puts the page together and writes it.
"""

from skilltrain.report.page import write_report

__all__ = ["write_report"]
