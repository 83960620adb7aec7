"""A scripted pair of models for tests: a target that follows one rule only when its system
prompt states it, and an optimizer that proposes edits from a script.

The same `Script.respond(request)` drives the in-process FakeModel (unit tests) and the HTTP
server in tests/e2e/scripted_server.py, so both paths see identical behaviour.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

GOOD_RULE = "Answer with only the number, nothing else."
HARMFUL_RULE = "Always write numbers out in English words."
SLOW_GUIDANCE = "- Keep answers short."
META_NOTES = "META: edits that remove words from answers helped."


def make_tasks(n: int = 24) -> list[dict]:
    return [{"id": f"add-{i:02d}", "input": f"What is {i} plus {i + 3}?", "answer": str(2 * i + 3),
             "type": "even" if i % 2 == 0 else "odd"} for i in range(n)]


FORM_HEADING = "## Answer format"
# A judge's rubric, with markers that must never reach an optimizer prompt (judge.py hides it).
BARE_CRITERION = "The reply is a bare integer matching ^[0-9]+$ (rubric-secret-7731)"
POLITE_CRITERION = "The reply contains no insult (rubric-secret-2214)"
JUDGE_FEEDBACK = "The reply wraps the number in a sentence; give the number alone."


def judge_reply(prompt: str) -> str:
    """The scripted judge: the bare-integer criterion is met by a bare number, any other
    criterion always; an unmet reason quotes its criterion (the worst case for hiding it)."""
    answer = prompt.split("<<<REPLY\n", 1)[-1].split("\nREPLY>>>", 1)[0].strip()
    criteria = re.findall(r"^\d+\. (.*)$", prompt.split("## Rubric", 1)[-1], re.M)
    bare = re.fullmatch(r"\d+", answer) is not None
    verdicts = [{"met": bare or "bare integer" not in c,
                 "reason": "bare number" if bare or "bare integer" not in c else f"fails {c}"}
                for c in criteria]
    return json.dumps({"criteria": verdicts, "feedback": "" if bare else JUDGE_FEEDBACK})


def target_answer(system: str, question: str, follows_form: bool = False) -> str:
    a, b = (int(x) for x in re.findall(r"\d+", question)[:2])
    if HARMFUL_RULE in system:
        return f"The answer is number {a + b} in words."
    if GOOD_RULE in system or (follows_form and FORM_HEADING in system):
        return str(a + b)
    return f"The answer is {a + b}."


def _edit(content: str, rationale: str) -> dict:
    return {"op": "append", "target": "", "content": content, "rationale": rationale,
            "support": 3}


@dataclass
class Script:
    """`analyst_plan` lists what the failure analysts propose, call by call (the last repeats):
    'good', 'harmful' or 'none'; 'auto' is stateless: harmful until the rejected buffer shows it
    failed, then good (so a resumed run sees the same replies as an uninterrupted one)."""

    analyst_plan: list[str] = field(default_factory=lambda: ["harmful", "good"])
    requests: list[dict] = field(default_factory=list)
    analyst_calls: int = 0
    follows_form: bool = False  # the target obeys an answer-format section as well
    deaf_models: tuple[str, ...] = ()  # targets that ignore the skill (for transfer tables)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, request: dict[str, Any]) -> str:
        with self._lock:
            self.requests.append(request)
            fmt = (request.get("response_format") or {}).get("json_schema") or {}
            name = fmt.get("name")
            prompt = request["messages"][-1]["content"]
            if isinstance(prompt, list):  # content parts (text and images): read the text
                prompt = " ".join(str(p.get("text", "")) for p in prompt if isinstance(p, dict))
            if name is None:
                system = next((m["content"] for m in request["messages"]
                               if m["role"] == "system"), "")
                if request.get("model") in self.deaf_models:
                    system = ""
                return target_answer(system, prompt, self.follows_form)
            if name == "AnalystReply":
                if "got right" in prompt:  # success analysts: nothing to add
                    return json.dumps({"patterns": "answers were bare numbers", "edits": []})
                plan = self.analyst_plan[min(self.analyst_calls, len(self.analyst_plan) - 1)]
                self.analyst_calls += 1
                if plan == "auto":
                    plan = "good" if "did NOT help" in prompt else "harmful"
                edits = {"good": [_edit(GOOD_RULE, "answers carried extra words")],
                         "harmful": [_edit(HARMFUL_RULE, "numbers should be spelled out")],
                         "none": []}[plan]
                return json.dumps({"patterns": "the model wraps numbers in sentences",
                                   "edits": edits})
            if name == "RuleReply":  # rule analysts follow the same plan, call by call
                plan = self.analyst_plan[min(self.analyst_calls, len(self.analyst_plan) - 1)]
                self.analyst_calls += 1
                if plan == "auto":
                    plan = "good" if "did NOT help" in prompt else "harmful"
                return json.dumps({"rule": {"good": GOOD_RULE, "harmful": HARMFUL_RULE,
                                            "none": ""}[plan]})
            if name == "MergeReply":
                found = [rule for rule in (GOOD_RULE, HARMFUL_RULE) if rule in prompt]
                return json.dumps({"reasoning": "merged", "edits": [
                    _edit(rule, "merged") for rule in found]})
            if name == "SlowUpdateReply":
                return json.dumps({"analysis": "compared", "guidance": SLOW_GUIDANCE})
            if name == "MetaReply":
                return json.dumps({"notes": META_NOTES})
            if name == "RankReply":
                return json.dumps({"reasoning": "first is best", "chosen": [1]})
            if name == "JudgeReply":
                return judge_reply(prompt)
            return json.dumps({"error": f"unscripted schema {name}"})
