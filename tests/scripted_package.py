"""A scripted pair of models for skill packages, beside tests/scripted.py (whose behaviour it
leaves alone): a target that follows the answer rule only when the rule appears inside the
reference file `references/format.md` as its system prompt shows it, and an optimizer whose
edits name package files, from a plan.

The same `PackageScript.respond(request)` drives the in-process FakeModel (unit tests) and the
HTTP server (tests/e2e/scripted_server.py --package), so both paths see identical behaviour.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from scripted import GOOD_RULE, META_NOTES, SLOW_GUIDANCE

FORMAT_FILE = "references/format.md"
CHECK_SCRIPT = "scripts/check.py"
BROKEN_SCRIPT = "def is_bare(text:\n    return text.strip().isdigit()"
REFUSED_MARK = "rejected before any evaluation"  # how the rejected buffer shows a refusal

SKILL_MD = ("---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers. "
            f"Answer in the format of [the format notes]({FORMAT_FILE}).\n"
            f"Check an answer with `python {CHECK_SCRIPT} ANSWER`.\n")
FORMAT_MD = "# Answer format\n\nWrite the sum.\n"
CHECK_PY = ('"""Is an answer a bare number?"""\nimport sys\n\n\ndef is_bare(text):\n'
            '    return text.strip().isdigit()\n\n\nif __name__ == "__main__":\n'
            '    print(is_bare(sys.argv[1]))\n')
LOGO = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"  # binary: carried along, never trained


def write_package(root: Any) -> None:
    """The starting package of the tests: SKILL.md, one reference, one script, one asset."""
    (root / "references").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "assets").mkdir()
    (root / "SKILL.md").write_text(SKILL_MD)
    (root / FORMAT_FILE).write_text(FORMAT_MD)
    (root / CHECK_SCRIPT).write_text(CHECK_PY)
    (root / "assets" / "logo.png").write_bytes(LOGO)


_BLOCK_RE = re.compile(r'<skill_file path="references/format\.md">\n(.*?)\n</skill_file>', re.S)


def package_answer(system: str, question: str) -> str:
    a, b = (int(x) for x in re.findall(r"\d+", question)[:2])
    block = _BLOCK_RE.search(system)
    if block is not None and GOOD_RULE in block.group(1):
        return str(a + b)
    return f"The answer is {a + b}."


def _edit(file: str, content: str, rationale: str) -> dict:
    return {"op": "append", "target": "", "content": content, "rationale": rationale,
            "support": 3, "file": file}


EDITS = {"good": [_edit(FORMAT_FILE, GOOD_RULE, "answers carried extra words")],
         "breakscript": [_edit(CHECK_SCRIPT, BROKEN_SCRIPT, "check more strictly")],
         "newfile": [_edit("references/numbers.md", GOOD_RULE, "a note of its own")],
         "none": []}


@dataclass
class PackageScript:
    """`analyst_plan`: what the failure analysts propose, call by call (the last repeats):
    'good' (the rule into references/format.md), 'breakscript' (a syntax error into
    scripts/check.py), 'newfile' (the rule into a new reference file) or 'none'; 'auto' is
    stateless: breakscript until the rejected buffer shows a refusal, then good."""

    analyst_plan: list[str] = field(default_factory=lambda: ["breakscript", "good"])
    requests: list[dict] = field(default_factory=list)
    analyst_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, request: dict[str, Any]) -> str:
        with self._lock:
            self.requests.append(request)
            fmt = (request.get("response_format") or {}).get("json_schema") or {}
            name = fmt.get("name")
            prompt = request["messages"][-1]["content"]
            if name is None:
                system = next((m["content"] for m in request["messages"]
                               if m["role"] == "system"), "")
                return package_answer(system, prompt)
            if name == "AnalystReply":
                if "got right" in prompt:
                    return json.dumps({"patterns": "answers were bare numbers", "edits": []})
                plan = self.analyst_plan[min(self.analyst_calls, len(self.analyst_plan) - 1)]
                self.analyst_calls += 1
                if plan == "auto":
                    plan = "good" if REFUSED_MARK in prompt else "breakscript"
                return json.dumps({"patterns": "the model wraps numbers in sentences",
                                   "edits": EDITS[plan]})
            if name == "RuleReply":
                return json.dumps({"rule": ""})
            if name == "MergeReply":
                edits = [e for plan in EDITS.values() for e in plan if e["content"] in prompt]
                return json.dumps({"reasoning": "merged", "edits": edits[:1]})
            if name == "SlowUpdateReply":
                return json.dumps({"analysis": "compared", "guidance": SLOW_GUIDANCE})
            if name == "MetaReply":
                return json.dumps({"notes": META_NOTES})
            if name == "RankReply":
                return json.dumps({"reasoning": "first is best", "chosen": [1]})
            return json.dumps({"error": f"unscripted schema {name}"})
