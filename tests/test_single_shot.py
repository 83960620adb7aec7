"""The agent harness's single-shot setting: one model reply, its calls run once, nothing comes
back to the model, the collector reads the workspace (in-process FakeModel; the HTTP path is in
tests/e2e/test_benchmark_agents.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agents.tool_server import call

from skilltrain.data import Task
from skilltrain.harness import make_harness
from skilltrain.harness.agent import (
    SINGLE_SHOT_TEXT_INSTRUCTIONS,
    SINGLE_SHOT_TOOLS_INSTRUCTIONS,
    TOOLS_INSTRUCTIONS,
    AgentHarness,
)
from skilltrain.models.base import Completion
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.fake import FakeModel
from skilltrain.models.meter import Meter
from skilltrain.records import Rollout, Usage
from skilltrain.skill import Skill

SKILL = Skill("---\nname: demo\ndescription: d\n---\n\n# Demo\nWrite answer.txt.\n")
CODE = ("n = int(open('numbers.txt').read().split()[0]) * 7\n"
        "open('answer.txt', 'w').write(str(n))\nprint('wrote', n)\n")
TASK = Task(id="t1", input="Multiply the number in numbers.txt by 7.", answer="42",
            meta={"files": {"numbers.txt": "6\n"}})


def collector(seen: list[str]) -> Any:
    def collect(task: Task, workspace: Path, final: str) -> str:
        """What the program left in the workspace, with the final text, as the answer."""
        path = workspace / "answer.txt"
        seen.append(path.read_text() if path.is_file() else "")
        return json.dumps({"file": seen[-1], "final": final})

    return collect


def run(harness: AgentHarness, respond: Any) -> tuple[Rollout, list[dict]]:
    model = FakeModel(respond)
    client = RoleClient(model, "target", Meter(), settings=CallSettings(retries=0))
    return asyncio.run(harness.run(SKILL, TASK, client)), model.requests


def system(request: dict) -> str:
    return request["messages"][0]["content"]


def test_tools_protocol_calls_the_model_once_and_runs_its_code_once():
    seen: list[str] = []

    def respond(request: dict) -> Completion:
        return Completion(text="FINAL: see answer.txt", usage=Usage(calls=1),
                          tool_calls=[call("python", {"code": CODE}, "c1")])

    harness = AgentHarness(single_shot=True, max_turns=5, collect=collector(seen))
    rollout, requests = run(harness, respond)
    assert len(requests) == 1  # max_turns does not matter: one reply
    assert system(requests[0]).startswith(SINGLE_SHOT_TOOLS_INSTRUCTIONS)
    assert "exactly one reply" in system(requests[0]) and "Write answer.txt." in system(requests[0])
    assert seen == ["42"]  # the code ran, once, and the collector read what it wrote
    assert json.loads(rollout.answer) == {"file": "42", "final": "see answer.txt"}
    tool = [e for e in rollout.trajectory if e["role"] == "tool"]
    assert len(tool) == 1 and "wrote 42" in tool[0]["content"] and tool[0]["error"] is False
    assert not any(e.get("event") == "turn_limit" for e in rollout.trajectory)
    assert rollout.error is None


def test_text_protocol_single_shot_records_a_failed_run_and_still_collects():
    seen: list[str] = []
    reply = ("```python\nopen('answer.txt', 'w').write('partial')\n"
             "raise SystemExit('boom: the sheet was missing')\n```\nFINAL: 41")
    harness = AgentHarness(protocol="text", single_shot=True, collect=collector(seen))
    rollout, requests = run(harness, lambda request: reply)
    assert len(requests) == 1
    head = SINGLE_SHOT_TEXT_INSTRUCTIONS.split("{tools}")[0]
    assert system(requests[0]).startswith(head) and "python(code)" in system(requests[0])
    assert seen == ["partial"]
    assert json.loads(rollout.answer)["final"] == "41"
    tool = next(e for e in rollout.trajectory if e["role"] == "tool")
    assert tool["error"] is True and "boom: the sheet was missing" in tool["content"]


def test_multi_turn_stays_the_default_and_feeds_output_back():
    seen: list[str] = []

    def respond(request: dict) -> Completion | str:
        if not any(m["role"] == "tool" for m in request["messages"]):
            return Completion(text="", usage=Usage(calls=1),
                              tool_calls=[call("python", {"code": CODE}, "c1")])
        return "FINAL: done"

    rollout, requests = run(AgentHarness(collect=collector(seen)), respond)
    assert len(requests) == 2 and system(requests[0]).startswith(TOOLS_INSTRUCTIONS)
    assert "wrote 42" in requests[1]["messages"][-1]["content"]
    assert seen == ["42"]


def test_single_shot_comes_from_the_config():
    assert make_harness("agent", agent={"single_shot": True}).single_shot is True
    assert make_harness("agent").single_shot is False
