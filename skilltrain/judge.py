"""The judge scorer: a model grades each answer against a rubric of criteria.

hard = every criterion met, soft = the fraction met, feedback = the judge's own words. The judge
is a third role (`judge`) with its own RoleClient, so its calls share the run's response cache
and meter (a `judge` line in usage and cost) and its own config section (`judge:`; unset, the
optimizer's section, with the scorer's `model` if it names one).

The rubric is the grading key: an optimizer that read it would write the criteria (or a regex
in them) into the skill instead of improving answers (a Goodhart loop). So unless the scorer
says `rubric_visible: true`, the feedback the optimizer sees names criteria by number only, and
any criterion text the judge quotes back is cut out of it.

A judge reply that fails, or that does not grade every criterion, is an infrastructure failure
of that item (never a wrong answer): evaluation.py counts a ModelError from a scorer as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, Field

from skilltrain.config import ModelConfig
from skilltrain.data import Task
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout, Score
from skilltrain.scoring import Scorer, ScorerError, make_scorer

STAGE = "judge"
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


class CriterionVerdict(BaseModel):
    met: bool
    reason: str = Field(default="", max_length=600)


class JudgeReply(BaseModel):
    """What the judge returns: one verdict per criterion, in the rubric's order."""

    criteria: list[CriterionVerdict]
    feedback: str = Field(default="", max_length=2000)


SYSTEM = ("You grade one reply to a task against a rubric. Judge each criterion on its own, "
          "strictly, from the reply alone. Return only JSON: {\"criteria\": [{\"met\": true or "
          "false, \"reason\": one short sentence}, ...] (one entry per criterion, in order), "
          "\"feedback\": two or three sentences on what the reply should do better}. Write the "
          "feedback about the reply; do not restate the rubric.")


def parse_rubric(value: Any, where: str) -> tuple[str, ...]:
    """Criteria from a list of strings, or from text: one criterion per line (bullets and
    numbers stripped), or the whole text when it is one paragraph."""
    if isinstance(value, str):
        lines = [_BULLET.sub("", line).strip() for line in value.splitlines()]
        items = [line for line in lines if line]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value if v.strip()]
    else:
        raise ScorerError(f"{where}: expected a list of criteria (strings) or text, got "
                          f"{type(value).__name__}")
    if not items:
        raise ScorerError(f"{where}: the rubric is empty; give at least one criterion")
    return tuple(items)


def judge_prompt(task: Task, answer: str, criteria: Sequence[str]) -> list[dict[str, str]]:
    reference = "" if task.answer in (None, "") else f"## Reference answer\n{task.answer}\n\n"
    rubric = "\n".join(f"{i}. {c}" for i, c in enumerate(criteria, start=1))
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"## Task\n{task.input}\n\n{reference}"
             f"## Reply to grade\n<<<REPLY\n{answer}\nREPLY>>>\n\n## Rubric\n{rubric}\n"}]


def hide_rubric(text: str, criteria: Sequence[str]) -> str:
    """`text` with every criterion the judge quoted back replaced by its number."""
    for i, criterion in sorted(enumerate(criteria, start=1), key=lambda p: -len(p[1])):
        text = re.sub(re.escape(criterion), f"[criterion {i}]", text, flags=re.I)
    return text


def verdict(reply: JudgeReply, criteria: Sequence[str], visible: bool) -> Score:
    """The score of a judge reply that graded every criterion."""
    met = [v.met for v in reply.criteria]
    missed = [(i, c, v) for i, (c, v) in enumerate(zip(criteria, reply.criteria), start=1)
              if not v.met]
    parts = [reply.feedback.strip()] if reply.feedback.strip() else []
    for i, criterion, v in missed:
        name = f"criterion {i} ({criterion})" if visible else f"criterion {i}"
        parts.append(f"{name} not met: {v.reason.strip() or 'no reason given'}")
    feedback = " ".join(parts) or f"all {len(criteria)} criteria met"
    if not visible:
        feedback = hide_rubric(feedback, criteria)
    return Score(hard=float(all(met)), soft=round(sum(met) / len(met), 4), feedback=feedback)


@dataclass(frozen=True)
class Calibration:
    """User-labelled items judged before a run: how often the judge agrees with the labels."""

    items: int
    agreed: int
    failed: int
    disagreements: list[str] = field(default_factory=list)

    def line(self) -> str:
        judged = self.items - self.failed
        rate = f"{self.agreed / judged:.0%}" if judged else "n/a"
        miss = f"; disagreed on {', '.join(self.disagreements[:5])}" if self.disagreements else ""
        fail = f"; {self.failed} judge call(s) failed" if self.failed else ""
        return f"judge calibration: agreed with {self.agreed}/{judged} labels ({rate}){miss}{fail}"


@dataclass(frozen=True)
class Judge:
    """`scorer: {name: judge, model: MODEL, rubric: [...], rubric_visible: false,
    calibration: [{input, answer, hard}, ...]}`; a task's own `rubric` field overrides the
    config's. Scores only once run setup hands it a client (`with_client`)."""

    model: str | None = None
    rubric: Any = None
    rubric_visible: bool = False
    calibration: Sequence[Mapping[str, Any]] = ()
    client: RoleClient | None = None
    label = "judge"
    needs_client = True

    def __post_init__(self) -> None:
        if self.rubric is not None:
            object.__setattr__(self, "rubric", parse_rubric(self.rubric, "scorer judge rubric"))
        for n, item in enumerate(self.calibration, start=1):
            if not isinstance(item, Mapping) or "answer" not in item \
                    or item.get("hard") not in (0, 1, True, False):
                raise ScorerError(f"scorer judge calibration item {n}: expected {{input, answer, "
                                  "hard: 0 or 1}} (rubric optional)")

    def with_client(self, client: RoleClient) -> Judge:
        return replace(self, client=client)

    def criteria(self, task: Task) -> tuple[str, ...]:
        own = (task.meta or {}).get("rubric") if isinstance(task.meta, Mapping) else None
        if own is not None:
            return parse_rubric(own, f"task {task.id!r} rubric")
        if self.rubric is None:
            raise ScorerError(f"scorer judge: task {task.id!r} has no rubric; give the scorer a "
                              "rubric or the task a `rubric` field")
        return self.rubric

    def check_tasks(self, tasks: Iterable[Task]) -> None:
        """Every task has a usable rubric: a missing one fails before any model call."""
        for task in tasks:
            self.criteria(task)

    async def score(self, task: Task, rollout: Rollout) -> Score:
        criteria = self.criteria(task)
        if self.client is None:
            raise ScorerError("scorer judge: no judge client; a judge scores inside `skilltrain "
                              "train` (or give Judge.with_client a RoleClient)")
        reply = await self.client.structured(judge_prompt(task, rollout.answer, criteria),
                                             JudgeReply, stage=STAGE)
        if len(reply.criteria) != len(criteria):  # parsed, but not a grading of this rubric
            self.client.meter.failures["invalid_output"] += 1
            raise ModelError("invalid_output", f"JudgeReply: graded {len(reply.criteria)} "
                             f"criteria of {len(criteria)}")
        return verdict(reply, criteria, self.rubric_visible)

    async def calibrate(self) -> Calibration:
        """Judge the labelled items (sequentially: a handful) and count agreement."""
        agreed = failed = 0
        missed: list[str] = []
        for n, item in enumerate(self.calibration, start=1):
            task = Task(id=f"calibration-{n}", input=str(item.get("input", "")),
                        meta={"rubric": item["rubric"]} if "rubric" in item else {})
            rollout = Rollout(task_id=task.id, skill_hash="calibration",
                              answer=str(item["answer"]))
            try:
                score = await self.score(task, rollout)
            except ModelError:
                failed += 1
                continue
            if score.hard == float(item["hard"]):
                agreed += 1
            else:
                missed.append(f"item {n}")
        return Calibration(len(self.calibration), agreed, failed, missed)


def build_scorer(spec: Any) -> Scorer:
    """A run's scorer from its config form (name, `judge:MODEL`, dict with `name`, object):
    make_scorer's forms plus the judge, which lives above scoring.py because it needs a model
    client."""
    options: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        options = dict(spec)
        spec = options.pop("name", None)
        if not isinstance(spec, str):
            raise ScorerError("scorer: a mapping needs a `name`, e.g. {name: judge, rubric: ...}")
    if isinstance(spec, str) and (spec == "judge" or spec.startswith("judge:")):
        if spec.startswith("judge:"):
            options.setdefault("model", spec[len("judge:"):] or None)
        try:
            return Judge(**options)
        except TypeError:
            raise ScorerError(f"scorer 'judge': unknown option(s) {sorted(options)}; accepted: "
                              "model, rubric, rubric_visible, calibration") from None
    return make_scorer(spec, **options)


def judge_section(judge: ModelConfig | None, optimizer: ModelConfig,
                  scorer: Any) -> ModelConfig:
    """The judge role's settings: the `judge:` section, else the optimizer's (same endpoint and
    key), with the model the scorer names, if any."""
    section = judge if judge is not None else optimizer
    model = getattr(scorer, "model", None)
    return section.model_copy(update={"model": model}) if model else section
