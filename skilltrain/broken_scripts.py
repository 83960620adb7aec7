"""Before screening and the gate, a skill package's candidates whose changed scripts fail their
checks (harness/package_check.py: compile, `bash -n`, the package's own tests, in the sandbox)
are refused. Each goes to the rejected buffer with its error, so the next analysts read why, and
costs no rollout and no gate evaluation: a script that does not even compile needs no
validation set to be judged. What was checked is written to steps/<id>/scripts.json.
"""

from __future__ import annotations

import asyncio

from skilltrain.config_sections import PackageConfig
from skilltrain.harness.package_check import check_package
from skilltrain.optim.search import Candidate
from skilltrain.run import RunContext
from skilltrain.step_record import Outcome, StepRecord
from skilltrain.store import SCRIPTS_FILE, step_file


async def refuse_broken(run: RunContext, step: StepRecord, candidates: list[Candidate],
                        settings: PackageConfig) -> list[Candidate]:
    """The candidates whose scripts pass (all of them for a single-file skill, or with
    `package.check_scripts` off). When none is left the step ends `rejected`, saying why."""
    base = run.state.incumbent.skill
    if not (base.is_package and settings.check_scripts):
        return candidates
    kept: list[Candidate] = []
    rows: list[dict] = []
    for c in candidates:
        report = await asyncio.to_thread(check_package, base, c.skill,
                                         tests_timeout=settings.tests_timeout)
        if report is not None:
            rows.append({"candidate": c.name, "hash": c.skill.hash, **report.to_json()})
        if report is None or report.ok:
            kept.append(c)
            continue
        run.remember_rejected(c.edits_for_memory(), c.patterns, 0.0, reason=report.error)
    if not rows:
        return kept
    run.store.write_json(step_file(step.id, SCRIPTS_FILE), {"candidates": rows})
    refused = [r for r in rows if not r["ok"]]
    run.emit("script_check", step=step.row.step, checked=len(rows), refused=len(refused),
             error=refused[0]["error"] if refused else None)
    skipped = [c["skipped"] for r in rows for c in r["checks"] if c.get("kind") == "sandbox"]
    if skipped:  # infrastructure: the candidates went on unchecked, and the user is told
        run.emit("warning", message=f"step {step.row.step}: script checks not run: "
                 f"{skipped[0]}")
    if not kept:
        step.row.outcome = Outcome.REJECTED
        step.row.reason = f"scripts failed their checks: {refused[0]['error']}"[:500]
    return kept
