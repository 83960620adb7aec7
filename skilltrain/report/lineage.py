"""The report's account of what changed and why: every accepted skill version with its diff,
edits and gate evidence, then the rejected and skipped steps with the gate's reasons.

The edits, rationales and reasons are model-written text; each is escaped where it is placed.
"""

from __future__ import annotations

from skilltrain.report.data import ACCEPTED, FORCED, SKIPPED, RunData, StepView
from skilltrain.report.evidence import attribution_block, attribution_caption
from skilltrain.report.markup import badge, delta, diff, esc, integer, note, num, sub, table, value
from skilltrain.store import GATE_FILE, SELECTION_FILE, SLOW_UPDATE_FILE, STATE_FILE, skill_name


def _edits(edits: list[dict]) -> str:
    if not edits:
        return ""
    rows = []
    for e in edits:
        target = f'<div class="muted">at: <code>{esc(e["target"])}</code></div>' \
            if e.get("target") else ""
        if e.get("file"):  # a package file other than SKILL.md
            target += f'<div class="muted">file: <code>{esc(e["file"])}</code></div>'
        rows.append([f'<code class="op">{esc(e.get("op"))}</code>',
                     f'<div class="edit">{esc(e.get("content"))}</div>{target}',
                     esc(e.get("rationale")), integer(e.get("support")), esc(e.get("source")),
                     esc(e.get("status"))])
    return table(["op", "edit", "rationale", "support", "source", "status"], rows, "edits",
                 "lllrll")


def _gate(gate: dict | None, row: StepView) -> str:
    """The gate's evidence for one decision: scores, items, reason and the rule's own details."""
    if not gate:
        if row.outcome == FORCED:
            return note("Accepted without the gate (forced slow update).")
        return note("No gate record for this step.")
    cand, inc = gate.get("candidate_score"), gate.get("incumbent_score")
    facts = [("rule", esc(gate.get("rule"))),
             ("candidate", num(cand, 4)), ("incumbent", num(inc, 4)),
             ("Δ", delta(sub(cand, inc), 4)), ("items used", integer(gate.get("items_used"))),
             ("new evaluations", integer(gate.get("new_evaluations"))),
             ("excluded", integer(gate.get("excluded"))),
             ("stopped early", "yes" if gate.get("stopped_early") else "no")]
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    reason = f'<p class="reason"><b>Reason:</b> {esc(gate.get("reason"))}</p>' \
        if gate.get("reason") else ""
    evidence = gate.get("evidence")
    ev = ""
    if isinstance(evidence, dict) and evidence:
        ev = "".join(f"<div><dt>{esc(k)}</dt><dd>{value(v)}</dd></div>"
                     for k, v in evidence.items())
        ev = f'<dl class="facts evidence">{ev}</dl>'
    elif evidence:
        ev = f"<p>{value(evidence)}</p>"
    return f'<div class="gate"><h4>Gate</h4><dl class="facts">{dl}</dl>{reason}{ev}</div>'


def _slow_update(data: RunData, step_id: str) -> str:
    slow = data.step_file(step_id, SLOW_UPDATE_FILE)
    if not slow:
        return ""
    return (f'<div class="slow"><h4>Slow update</h4><p class="muted">{esc(slow.get("analysis"))}'
            f'</p><div class="edit">{esc(slow.get("guidance"))}</div></div>')


def _file_diffs(data: RunData, old: int, new: int) -> str | None:
    """A package version's change, one diff per changed file; None for single files."""
    before, after = data.skill_files(old), data.skill_files(new)
    if before is None or after is None:
        return None
    a, b = f"v{old:04d}", f"v{new:04d}"
    parts = [f'<h4 class="file">{esc(path)}</h4>'
             + diff(before.get(path, ""), after.get(path, ""), f"{a}/{path}", f"{b}/{path}")
             for path in sorted(before.keys() | after.keys())
             if before.get(path) != after.get(path)]
    return "".join(parts) or note("No file of the package changed.")


def lineage_section(data: RunData) -> str:
    title = ('<section id="lineage"><h2>Skill lineage</h2><p class="caption">Each accepted '
             'version: its diff against its parent, the edits that made it, and the gate\'s '
             'evidence.</p>' + attribution_caption(data))
    if not data.versions:
        return title + note(f"No version record ({STATE_FILE} missing).") + "</section>"
    rows_by_version = {r.version: r for r in data.history if r.version is not None}
    best = data.best_version()
    parts = []
    by_number = {v.get("number"): v for v in data.versions}
    for prev, version in zip(data.versions, data.versions[1:]):
        number, pruned = version.get("number"), bool(version.get("pruned"))
        prev = by_number.get(version.get("parent"), prev)  # a pruned version's is the best
        row = rows_by_version.get(number, StepView())
        step_id = row.id or ""
        old, new = data.skill_text(prev.get("number", 0)), data.skill_text(number)
        old_name, new_name = skill_name(prev.get("number", 0)), skill_name(number)
        change = diff(old, new, old_name, new_name) if old is not None and new is not None \
            else note(f"Skill file {old_name} or {new_name} is missing.")
        files = _file_diffs(data, prev.get("number", 0), number)
        change = files if files is not None else change
        sel = data.step_file(step_id, SELECTION_FILE) if step_id else None
        edits = _edits([e for e in (sel or {}).get("edits") or [] if isinstance(e, dict)])
        gate = data.step_file(step_id, GATE_FILE) if step_id else None
        outcome = row.outcome if row.outcome is not None else "pruned" if pruned else \
            ACCEPTED if version.get("gated", True) else FORCED
        star = ' <span class="best">★ best</span>' if number == best else ""
        parts.append(
            f'<article class="version"><h3>{esc(new_name)} {badge(outcome)}{star}'
            f'<span class="muted"> from {esc(old_name)} at step {integer(version.get("step"))} '
            f'({esc(step_id or ("pruning" if pruned else "?"))})</span></h3>'
            f'{change}{edits}{_slow_update(data, step_id) if step_id else ""}'
            f'{note("Made by pruning at the end of the run: see Pruning.") if pruned else ""}'
            f'{"" if pruned else _gate(gate, row)}{attribution_block(data, number)}</article>')
    if not parts:
        parts.append(note("No edit has been accepted: the skill is still v0000."))
    final = data.final_gate
    if final:
        verdict = "accepted: the final skill is shipped" if final.get("accepted") else \
            "rejected: the best gated version is shipped"
        parts.append(f'<p><b>Final gate</b> (final incumbent against best): {esc(verdict)}. '
                     f'{esc(final.get("reason"))}</p>')
    return title + "".join(parts) + "</section>"


def _rejected_edits(data: RunData, step_id: str) -> str:
    """What a rejected step tried: its selected edits with rationales, or its slow update."""
    sel = data.step_file(step_id, SELECTION_FILE) or {}
    slow = data.step_file(step_id, SLOW_UPDATE_FILE) or {}
    edits = "".join(f'<div class="edit small-edit">{esc(e.get("content"))}</div>'
                    f'<div class="muted why">{esc(e.get("rationale"))}</div>'
                    for e in sel.get("edits") or [] if isinstance(e, dict))
    if not edits and slow.get("guidance"):
        edits = f'<div class="edit small-edit">{esc(slow["guidance"])}</div>'
    return edits


def rejected_section(data: RunData) -> str:
    title = '<section id="rejected"><h2>Rejected and skipped steps</h2>'
    rows = []
    for r in data.history:
        if r.outcome is None or r.outcome in (ACCEPTED, FORCED, SKIPPED):
            continue
        step_id = r.id or ""
        edits = _rejected_edits(data, step_id)
        why = r.gate_reason or r.reason
        reason = f'<div class="gate-why"><b>gate:</b> {esc(why)}</div>' if why else ""
        rows.append([esc(step_id), badge(r.outcome),
                     f'{num(r.val_incumbent)} → {num(r.val_candidate)}',
                     delta(sub(r.val_candidate, r.val_incumbent)), integer(r.gate_items),
                     (edits or '<span class="muted">—</span>') + reason])
    body = table(["step", "outcome", "val", "Δ", "items", "edits and the gate's reason"], rows,
                 "rejected", "llrrrl") if rows else note("No candidate was rejected.")
    skipped: dict[str, list[str]] = {}
    for r in data.history:
        if r.outcome == SKIPPED:
            skipped.setdefault(str(r.reason or "no reason given"), []).append(
                str(r.id if r.id is not None else r.step))
    skip = "".join(f'<p class="skipped"><b>Skipped</b> {esc(", ".join(ids))}: {esc(reason)}</p>'
                   for reason, ids in skipped.items())
    return title + body + skip + "</section>"
