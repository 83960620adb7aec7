"""Stage 3: merge the minibatch patches hierarchically into one.

Each side's patches are merged in groups (one call per group, a level's groups in parallel) until
one patch per side remains; then one final merge in which failure-driven edits take priority. A
merge call that fails, or whose reply does not survive the meaning checks (a merged edit must be
non-empty and trace to the edits it merges), is recorded and replaced by a plain de-duplicated
concatenation ordered failure-first by support, so one bad reply does not lose the analysts' work.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.optim.checks import EditChecker
from skilltrain.optim.patch import Patch, render_edits
from skilltrain.optim.prompts import render
from skilltrain.optim.schemas import merge_schema
from skilltrain.skill import Edit, Skill


def concat_dedup(patches: list[Patch], side: str) -> Patch:
    """Merge without a model: identical edits collapse and their support adds up."""
    merged: dict[tuple[str, str, str, str], Edit] = {}
    for p in patches:
        for e in p.edits:
            key = (e.file, e.op, e.target.strip(), e.content.strip())
            if key in merged:
                old = merged[key]
                merged[key] = old.model_copy(update={"support": old.support + e.support})
            else:
                merged[key] = e
    edits = sorted(merged.values(), key=lambda e: (e.source != "failure", -e.support))
    patterns = "\n".join(p.patterns for p in patches if p.patterns)
    return Patch(side=side, edits=edits, patterns=patterns[:2000])


@dataclass
class Aggregated:
    """The merged patch and what it took: merge calls, failed calls, and merge replies that
    failed the meaning checks (each replaced by the concatenation)."""

    patch: Patch
    calls: int = 0
    failed_calls: int = 0
    fallbacks: int = 0


@dataclass(frozen=True)
class _Merge:
    client: RoleClient
    checker: EditChecker | None
    group_size: int
    limit: int


async def aggregate(skill: Skill, patches: list[Patch], client: RoleClient, *,
                    group_size: int = 8, limit: int = 16,
                    checker: EditChecker | None = None) -> Aggregated:
    """Every analyst's patch merged into one, failure-driven edits first."""
    how = _Merge(client, checker, max(2, group_size), limit)
    out = Aggregated(Patch(side="merged"))
    fail, succ = await asyncio.gather(
        _reduce_side(how, out, skill, [p for p in patches if p.side == "failure"], "failure"),
        _reduce_side(how, out, skill, [p for p in patches if p.side == "success"], "success"),
    )
    if fail.edits and succ.edits:
        final = await _merge(how, out, skill, [fail, succ], "merged")
        final.patterns = "\n".join(x for x in (fail.patterns, succ.patterns) if x)[:2000]
        out.patch = final
    else:
        only = fail if fail.edits else succ
        out.patch = Patch(side="merged", edits=only.edits,
                          patterns=fail.patterns or succ.patterns)
    return out


async def _merge(how: _Merge, out: Aggregated, skill: Skill, patches: list[Patch],
                 side: str) -> Patch:
    non_empty = [p for p in patches if p.edits]
    if len(non_empty) <= 1:
        return concat_dedup(patches, side)
    shown = "\n\n".join(
        f"### From a {p.side} analyst\nPatterns: {p.patterns[:500]}\n{render_edits(p.edits)}"
        for p in non_empty
    )
    prompt = render(
        "merge",
        skill=skill.for_optimizer(), patches=shown, limit=how.limit,
        priority=(", and when a failure-driven edit conflicts with a success-driven one, "
                  "keep the failure-driven one") if side == "merged" else "",
    )
    out.calls += 1
    fallback = concat_dedup(non_empty, side)
    try:
        reply = await how.client.structured(
            [{"role": "user", "content": prompt}], merge_schema(skill.is_package),
            stage="aggregate"
        )
    except ModelError as exc:
        if exc.kind == "fatal":
            raise
        out.failed_calls += 1
        return fallback
    sources = {e.source for p in non_empty for e in p.edits}
    source = "failure" if "failure" in sources else "success"
    edits = [e.to_edit(source) for e in reply.edits[: how.limit]]
    if how.checker is not None:
        inputs = [e for p in non_empty for e in p.edits]
        rollouts = sum(max((e.support for e in p.edits), default=0) for p in non_empty)
        checked = how.checker.merged(
            how.checker.edits(edits, max_support=max(1, rollouts)), inputs)
        if checked is None:
            out.fallbacks += 1
            return fallback
        edits = checked
    return Patch(side=side, edits=edits, patterns=fallback.patterns)


async def _reduce_side(how: _Merge, out: Aggregated, skill: Skill, patches: list[Patch],
                       side: str) -> Patch:
    level = [p for p in patches if p.edits]
    if not level:
        return Patch(side=side, patterns="\n".join(p.patterns for p in patches)[:2000])
    while len(level) > 1:
        groups = [level[i : i + how.group_size] for i in range(0, len(level), how.group_size)]
        level = list(await asyncio.gather(*(
            _merge(how, out, skill, g, side) if len(g) > 1 else _same(g[0]) for g in groups
        )))
    return level[0]


async def _same(patch: Patch) -> Patch:
    return patch
