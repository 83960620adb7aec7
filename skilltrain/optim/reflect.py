"""Stage 2, the backward pass: analysts read scored rollouts and propose edits.

Failures and successes are analysed separately, one optimizer call per minibatch, all in
parallel, as in the paper. Beside them a step draws several cheap *rule proposals*: the same
short prompt (the first failures as a table) sampled `proposals` times (sample index k, greedy
first, then at a higher temperature), each stating one general rule that becomes an append
candidate of its own. One prompt sampled k times costs one prompt's reading where the server
caches prompts (llama.cpp does; so do the big APIs), and only the short replies after that.
One greedy proposal per step misses what a few sampled ones find (measured with the 1.5B
optimizer on house-number: the output rule appeared in 2 of 4 rule samples, and never in the
full analyst's greedy reply, which proposed replacements of text the skill does not hold).
Analysts see failures as a compact table (input, answer given, correct answer) and state the
general rule before proposing edits.

Every reply goes through the meaning checks (optim/checks.py) before its edits count. An analyst
whose reply stays invalid is an infrastructure failure: it is recorded and contributes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from skilltrain.data import Task
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.optim.checks import CheckLog, EditChecker, Grounding, display_answer
from skilltrain.optim.memory import RejectedBuffer
from skilltrain.optim.patch import Patch
from skilltrain.optim.prompts import render
from skilltrain.optim.schemas import ALL_OPS, RuleReply, analyst_schema, ops_help, package_help
from skilltrain.package import SkillPackage
from skilltrain.records import FailureRule, Rollout
from skilltrain.skill import Edit, Skill


@dataclass
class ReflectResult:
    patches: list[Patch] = field(default_factory=list)
    reminders: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # why each failed call failed
    n_failures: int = 0
    n_successes: int = 0
    checks: CheckLog = field(default_factory=CheckLog)
    checker: EditChecker | None = None  # reused by the later stages of the step

    @property
    def failed_calls(self) -> int:
        return len(self.errors)


def _clip(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n // 2] + " [...] " + text[-n // 2 :]


def render_rollout(task: Task, rollout: Rollout, limit: int = 1500) -> str:
    """What an analyst sees of one rollout; long trajectories are cut in the middle."""
    score = rollout.score
    steps = [m for m in rollout.trajectory if m.get("role") not in ("system", "user")]
    lines = [f"### Task {task.id} (type: {task.type})", f"Input: {_clip(task.input, limit)}"]
    if len(steps) > 1:  # an agent run: show the steps, not only the final answer
        shown = json.dumps(steps, ensure_ascii=False)
        lines.append(f"Trajectory: {_clip(shown, limit)}")
    lines.append(f"Model answer: {_clip(rollout.answer, limit // 2)}")
    if score is not None:
        lines.append(f"Score: hard={score.hard:.2f} soft={score.soft:.2f}")
        if score.feedback:
            lines.append(f"Feedback: {_clip(score.feedback, 400)}")
    return "\n".join(lines)


def _cell(text: object, n: int) -> str:
    one = _clip(str(text).strip(), n).replace("|", "\\|").replace("\n", " \\n ")
    return one or "(empty)"


def render_table(scored: Sequence[tuple[Task, Rollout]], *, cell: int = 300) -> str:
    """Failures as one compact table; agent trajectories and grader notes follow it."""
    notes = any(r.score and r.score.feedback for _, r in scored)
    head = ("| # | type | input | answer given | correct answer |"
            + (" grader note |" if notes else ""))
    rows = [head, "|---" * (5 + notes) + "|"]
    extra: list[str] = []
    for i, (task, r) in enumerate(scored, start=1):
        expected = _cell(display_answer(task.answer), cell // 2)
        row = (f"| {i} | {_cell(task.type, 40)} | {_cell(task.input, cell)} | "
               f"{_cell(r.answer, cell * 2 // 3)} | {expected} |")
        if notes:
            row += f" {_cell(r.score.feedback if r.score else '', 150)} |"
        rows.append(row)
        steps = [m for m in r.trajectory if m.get("role") not in ("system", "user")]
        if len(steps) > 1:
            extra.append(f"Row {i} trajectory: "
                         f"{_clip(json.dumps(steps, ensure_ascii=False), 1200)}")
    return "\n".join(rows) + ("\n\n" + "\n".join(extra) if extra else "") + "\n"


REMINDERS = """
5. Some failures may happen although the skill already states the right rule: the model just did
   not follow it. Do not edit the body for those; put a one-line reminder for each such lapse in
   `reminders`.
"""


def minibatches(items: Sequence, size: int) -> list[list]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


RULE_ROWS = 12  # failures a rule analyst sees: enough to show a pattern, short enough to be cheap


@dataclass
class ProposalSettings:
    proposals: int = 0  # rule analysts per step; 0 is the paper's loop
    temperature: float = 0.8  # for proposals after the first


async def reflect(
    skill: Skill,
    scored: Sequence[tuple[Task, Rollout]],
    client: RoleClient,
    *,
    minibatch_size: int,
    budget: int,
    rejected: RejectedBuffer,
    failure: FailureRule = FailureRule(),
    analyse_successes: bool = True,
    reminders: bool = False,
    ops: tuple[str, ...] = ALL_OPS,
    search: ProposalSettings | None = None,
    train: Sequence[Task] = (),
) -> ReflectResult:
    """`reminders=True` turns on the skill-aware appendix: failure analysts class each failure
    as a defect of the skill (edit the body) or a lapse in following it (a short reminder).
    `train` is the train split (for grounding worked examples); it never holds val or test."""
    search = search or ProposalSettings()
    ok = [(t, r) for t, r in scored if r.ok]
    failures = [(t, r) for t, r in ok if failure.failed(r)]
    successes = [(t, r) for t, r in ok if failure.passed(r)]
    result = ReflectResult(n_failures=len(failures), n_successes=len(successes))
    checker = result.checker = EditChecker(skill, result.checks)
    grounding = Grounding(list(train) or [t for t, _ in scored], result.checks)
    cuts = minibatches(failures, minibatch_size)
    jobs = [("failure", k, mb) for k, mb in enumerate(cuts)]
    if analyse_successes and successes:
        jobs.append(("success", 0, successes[:minibatch_size]))
    rule_rows = failures[:RULE_ROWS]
    package = isinstance(skill, SkillPackage)
    shown_ops = ops_help(ops) + ("\n" + package_help(skill.limits.new_files)
                                 if isinstance(skill, SkillPackage) else "")

    async def analyse(side: str, k: int, batch: list[tuple[Task, Rollout]]) -> Patch | None:
        extra = {"reminders": REMINDERS if reminders else ""} if side == "failure" else {}
        schema = analyst_schema(ops, reminders and side == "failure", files=package)
        shown = (render_table(batch) if side == "failure"
                 else "\n\n".join(render_rollout(t, r) for t, r in batch))
        prompt = render(
            f"analyst_{side}", **extra, ops=shown_ops, skill=skill.for_optimizer(),
            **({"table": shown} if side == "failure" else {"rollouts": shown}),
            rejected=("\n" + rejected.render()) if rejected.entries else "",
            budget=budget,
        )
        try:
            reply = await client.structured(
                [{"role": "user", "content": prompt}], schema, stage="reflect")
        except ModelError as exc:
            if exc.kind == "fatal":
                raise
            result.errors.append(f"{side} analyst {k}: {exc.kind}: {exc.message}"[:500])
            return None
        edits = [e.to_edit(side) for e in reply.edits[:budget]]
        edits = grounding.edits(checker.edits(edits, max_support=len(batch)))
        rule = getattr(reply, "rule", "").strip()
        if not edits and rule and side == "failure":
            edits = _rule_as_edit(rule, checker, grounding, len(batch))
        result.reminders += list(getattr(reply, "reminders", []))
        return Patch(side=side, edits=edits, patterns=reply.patterns, rule=rule, proposal=k)

    async def state_rule(k: int, batch: list[tuple[Task, Rollout]]) -> Patch | None:
        prompt = render("analyst_rule", skill=skill.body, table=render_table(batch))
        try:
            reply = await client.structured(
                [{"role": "user", "content": prompt}], RuleReply, stage="reflect", sample=k,
                temperature=search.temperature if k else None)
        except ModelError as exc:
            if exc.kind == "fatal":
                raise
            result.errors.append(f"rule analyst {k}: {exc.kind}: {exc.message}"[:500])
            return None
        rule = reply.rule.strip()
        edits = _rule_as_edit(rule, checker, grounding, len(batch)) if rule else []
        return Patch(side="rule", edits=edits, patterns=f"stated rule: {rule}"[:600],
                     rule=rule, proposal=k)

    patches = await asyncio.gather(*(analyse(side, k, mb) for side, k, mb in jobs),
                                   *(state_rule(k, rule_rows)
                                     for k in range(search.proposals if failures else 0)))
    result.patches = [p for p in patches if p is not None]
    return result


def _rule_as_edit(rule: str, checker: EditChecker, grounding: Grounding, support: int
                  ) -> list[Edit]:
    """An analyst that stated a rule but whose edits were all unusable still said something:
    the rule itself becomes an append (checked like any edit), counted as `rule_appended`."""
    edit = Edit(op="append", content=rule, rationale="the analyst's stated rule",
                support=support, source="failure")
    kept = grounding.edits(checker.edits([edit], max_support=support))
    if kept:
        checker.log.count("rule_appended")
    return kept
