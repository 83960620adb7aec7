"""The report's end-of-run evidence: which edit fixed and broke which items (attribution), what
pruning removed and what it cost, and how often the test split was looked at.

Item ids, change previews and gate reasons come from the task file or a model; each is escaped
where it is placed. A value of another shape (an older or hand-edited summary) shows as a dash.
"""

from __future__ import annotations

from typing import Any

from skilltrain.report.data import RunData
from skilltrain.report.markup import delta, esc, integer, note, num, table

SHOWN_IDS = 12
MODES = {"leave_one_out": "the best skill with this change against the best skill without it",
         "version": "this version against its parent (a later edit rewrote the change, so it "
                    "cannot be taken out of the best skill alone)"}


def _ids(ids: Any) -> str:
    if not isinstance(ids, list) or not ids:
        return '<span class="muted">none</span>'
    shown = ", ".join(f"<code>{esc(i)}</code>" for i in ids[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return f"<b>{len(ids)}</b>: {shown}" + (f' <span class="muted">+{more} more</span>'
                                            if more > 0 else "")


def _entry(data: RunData, version: Any) -> dict | None:
    att = data.attribution() or {}
    entries = att.get("entries") if isinstance(att.get("entries"), list) else []
    return next((e for e in entries if isinstance(e, dict) and e.get("version") == version),
                None)


def attribution_block(data: RunData, version: Any) -> str:
    """Which validation and test items this version's change fixed and broke."""
    entry = _entry(data, version)
    if entry is None:
        return ""
    rows = [[split, delta(part.get("delta")), integer(part.get("n")), _ids(part.get("fixed")),
             _ids(part.get("broke"))]
            for split in ("val", "test") if isinstance(part := entry.get(split), dict)]
    how = MODES.get(entry.get("mode"), str(entry.get("mode")))
    body = table(["split", "Δ with − without", "items", "fixed", "broke"], rows, "num",
                 "lrrll") if rows else note("No split was scored.")
    return (f'<div class="gate"><h4>Attribution</h4><p class="muted">{esc(how)}</p>{body}'
            "</div>")


def attribution_caption(data: RunData) -> str:
    """One line under the lineage's title: what attribution measured and what it cost."""
    att = data.attribution()
    if att is None:
        return ""
    stopped = f" It stopped early: {att['stopped']}." if att.get("stopped") else ""
    return (f'<p class="caption">Attribution: for each accepted version, the validation and '
            f"test items its change fixed and broke, from cached per-item outcomes where they "
            f"existed; {integer(att.get('new_evaluations'))} new evaluations.{esc(stopped)}</p>")


def pruned_from(data: RunData) -> str:
    """For the skill-size card: the size before pruning, when pruning removed something."""
    p = data.pruning() or {}
    tokens = p.get("tokens") if isinstance(p.get("tokens"), dict) else {}
    return f"; pruned from {integer(tokens.get('before'))}" if p.get("kept") else ""


def prune_section(data: RunData) -> str:
    """Tokens before and after pruning, each removal tried with both scores, and what the
    pruned and unpruned skills scored."""
    p = data.pruning()
    if p is None:
        return ""
    tokens = p.get("tokens") if isinstance(p.get("tokens"), dict) else {}
    tried = [t for t in p.get("tried") or [] if isinstance(t, dict)]
    head = (f'<p><b>Tokens {integer(tokens.get("before"))} → {integer(tokens.get("after"))}</b>'
            f' · {integer(p.get("kept"))} of {len(tried)} removals kept · '
            f'{integer(p.get("new_evaluations"))} new evaluations · gate '
            f'{esc(p.get("rule"))}</p><p class="caption">A removal is kept when the gate does '
            "not accept the skill with the text over the skill without it, and the shorter "
            "skill scores no lower on the items compared (validation only). In the gate's "
            "reason, the candidate is the skill with the text.</p>")
    if p.get("stopped"):
        head += note(f"Pruning stopped early: {p['stopped']}")
    s = data.summary or {}
    val, test = s.get("val") or {}, s.get("test") or {}
    scores = ""
    if isinstance(val, dict) and "unpruned" in val:
        scores = table(["skill", "validation", "test"],
                       [["unpruned", num(val.get("unpruned")), num((test or {}).get("unpruned"))],
                        ["pruned (best)", num(val.get("best")), num((test or {}).get("best"))]],
                       "num", "lrr")
    rows = [[esc(t.get("kind")), f'<div class="edit small-edit">{esc(t.get("preview"))}</div>',
             integer(t.get("tokens")),
             '<span class="up">kept</span>' if t.get("kept") else
             '<span class="down">refused</span>', num(t.get("score_with")),
             num(t.get("score_without")), integer(t.get("items")),
             f'<span class="gate-why">{esc(t.get("reason"))}</span>'] for t in tried]
    body = table(["unit", "text", "tokens", "removal", "val with", "val without", "items",
                  "gate"], rows, "rejected", "llrlrrrl") if rows else \
        note("Nothing could be removed: no section or paragraph outside protected text.")
    return f'<section id="prune"><h2>Pruning</h2>{head}{scores}{body}</section>'


def sealed_test(data: RunData) -> str:
    """Whether test is still an honest estimate: looked at once, or `test seen N times`."""
    looks = data.test_looks()
    seen, skills = looks.get("test_seen"), looks.get("test_looks") or {}
    if not isinstance(seen, int) or seen < 1 or not isinstance(skills, dict):
        return ""
    if seen == 1:
        return (f'<p class="caption">Test looked at once ({len(skills)} skills, scored after '
                "every choice was made on validation): an honest estimate.</p>")
    rows = []
    for skill_hash, entry in skills.items():
        entry = entry if isinstance(entry, dict) else {}
        by = entry.get("by") if isinstance(entry.get("by"), dict) else {}
        rows.append([f"<code>{esc(skill_hash)}</code>", esc(", ".join(map(str, entry.get(
            "labels") or []))), integer(entry.get("count")),
            esc(", ".join(f"{k} {v}" for k, v in by.items()))])
    return (f'<p class="note"><b>Test seen {seen} times.</b> Test was scored on more than one '
            "occasion for this run; if anything was changed after an earlier look, the test "
            "score is no longer a clean held-out estimate.</p>"
            + table(["skill", "as", "looks", "who"], rows, "num", "llrl"))
