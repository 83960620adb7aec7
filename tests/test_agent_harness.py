"""The agent harness against a scripted OpenAI-compatible server that speaks tool calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from agents.tool_server import ToolServer, call, reply, tool_messages

from skilltrain.data import Task
from skilltrain.harness.agent import AgentHarness, final_answer, parse_text_actions
from skilltrain.harness.sandbox import Limits
from skilltrain.harness.tools import ToolError, tool_from_function
from skilltrain.models.base import ModelError
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.meter import Meter
from skilltrain.models.openai_compat import OpenAIModel
from skilltrain.optim.reflect import render_rollout
from skilltrain.records import Rollout
from skilltrain.skill import Skill

SKILL = Skill("---\nname: demo\ndescription: d\n---\n\n# Demo\nAlways double-check sums.\n")


def run_agent(policy: Any, harness: AgentHarness, task: Task | None = None
              ) -> tuple[Rollout, list[dict[str, Any]]]:
    task = task or Task(id="t1", input="What is 6 times 7?", answer="42")

    async def go() -> Rollout:
        with ToolServer(policy) as srv:
            model = OpenAIModel("scripted", base_url=srv.base_url, api_key="x", timeout=10)
            client = RoleClient(model, "target", Meter(), settings=CallSettings(retries=0))
            try:
                return await harness.run(SKILL, task, client)
            finally:
                await model.aclose()
                go.requests = srv.requests  # type: ignore[attr-defined]

    rollout = asyncio.run(go())
    return rollout, go.requests  # type: ignore[attr-defined]


def weather(city: str, units: Literal["c", "f"] = "c") -> str:
    """Today's temperature in a city.

    Args:
        city: the city's name
        units: c for Celsius, f for Fahrenheit
    """
    if city == "Atlantis":
        raise LookupError("no such city")
    return f"{city}: 21{units.upper()}"


def test_tool_calls_round_trip() -> None:
    def policy(body: dict) -> dict:
        done = tool_messages(body)
        if not done:
            return reply(tool_calls=[
                call("python", {"code": "print(6 * 7)"}, "c1"),
                call("write_file", {"path": "notes/answer.txt", "content": "42"}, "c2"),
                call("weather", {"city": "Oslo"}, "c3"),
            ])
        if len(done) == 3:
            return reply(tool_calls=[call("read_file", {"path": "notes/answer.txt"}, "c4")])
        return reply("The product is computed.\nFINAL: " + done[0]["content"].strip())

    harness = AgentHarness(tools=[weather], limits=Limits(timeout_s=20))
    rollout, requests = run_agent(policy, harness)
    assert rollout.error is None, rollout.error
    assert rollout.answer == "42"
    assert len(requests) == 3
    first, second, third = requests
    names = [t["function"]["name"] for t in first["tools"]]
    assert names == ["python", "read_file", "list_files", "write_file", "weather"]
    system = first["messages"][0]
    assert system["role"] == "system" and "Always double-check sums." in system["content"]
    assert "name: demo" not in system["content"]  # the front matter is not shown
    # results come back as role=tool messages, in order, with the calls' ids
    assistant = second["messages"][2]
    assert assistant["role"] == "assistant"
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2", "c3"]
    tools = tool_messages(second)
    assert [m["tool_call_id"] for m in tools] == ["c1", "c2", "c3"]
    assert tools[0]["content"].strip() == "42"
    assert tools[1]["content"] == "wrote 2 bytes to notes/answer.txt"
    assert tools[2]["content"] == "Oslo: 21C"
    assert tool_messages(third)[-1] == {"role": "tool", "tool_call_id": "c4", "content": "42"}
    # the trajectory records the calls, the observations and the workspace
    roles = [e["role"] for e in rollout.trajectory]
    assert roles == ["user", "assistant", "tool", "tool", "tool", "assistant", "tool",
                     "assistant", "harness", "harness"]
    sandbox = rollout.trajectory[-2]  # the python tool ran: the record says how it was isolated
    assert sandbox["event"] == "sandbox" and sandbox["isolation"] in ("namespaces", "guard")
    assert rollout.trajectory[2] == {"role": "tool", "tool_call_id": "c1", "name": "python",
                                     "content": "42", "error": False}
    assert rollout.trajectory[-1]["files"] == {"notes/answer.txt": 2}
    assert rollout.usage.calls == 3 and rollout.usage.prompt_tokens == 30
    assert rollout.wall_s > 0
    json.dumps(rollout.model_dump())  # serialisable for the score cache
    assert "Trajectory:" in render_rollout(Task(id="t1", input="q", answer="42"), rollout)


def test_tool_errors_reach_the_model() -> None:
    def policy(body: dict) -> dict:
        if not tool_messages(body):
            return reply(tool_calls=[
                call("python", {"code": "raise ValueError('bad sheet')"}, "e1"),
                call("no_such_tool", {}, "e2"),
                call("weather", {"city": "Atlantis"}, "e3"),
                call("weather", "{not json", "e4"),
                call("weather", {"town": "Oslo"}, "e5"),
                call("read_file", {"path": "../../etc/passwd"}, "e6"),
                call("read_file", {"path": "missing.txt"}, "e7"),
            ])
        return reply("FINAL: gave up")

    rollout, requests = run_agent(policy, AgentHarness(tools=[weather]))
    assert rollout.error is None and rollout.answer == "gave up"
    results = {m["tool_call_id"]: m["content"] for m in tool_messages(requests[1])}
    assert list(results) == ["e1", "e2", "e3", "e4", "e5", "e6", "e7"]
    assert all(text.startswith("error:") for text in results.values())
    assert "ValueError: bad sheet" in results["e1"] and "[exit code 1]" in results["e1"]
    assert "unknown tool 'no_such_tool'" in results["e2"] and "weather" in results["e2"]
    assert "LookupError: no such city" in results["e3"]
    assert "not valid JSON" in results["e4"]
    assert "city" in results["e5"] and "town" in results["e5"]
    assert "outside the workspace" in results["e6"]
    assert "no such file" in results["e7"]
    observed = [e for e in rollout.trajectory if e["role"] == "tool"]
    assert [e["error"] for e in observed] == [True] * 7


def test_turn_limit_ends_the_run_without_an_infrastructure_error() -> None:
    def policy(body: dict) -> dict:
        n = len(tool_messages(body))
        return reply(tool_calls=[call("list_files", {}, f"l{n}")])

    rollout, requests = run_agent(policy, AgentHarness(max_turns=3))
    assert len(requests) == 3
    assert rollout.error is None and rollout.answer == ""
    assert {"role": "harness", "event": "turn_limit", "turns": 3} in rollout.trajectory
    assert rollout.usage.calls == 3


def test_model_failures_are_infrastructure_errors_and_fatal_ones_raise() -> None:
    rollout, _ = run_agent(lambda body: {"error_status": 400}, AgentHarness())
    assert rollout.error and rollout.error_kind == "http_error" and rollout.answer == ""
    assert rollout.trajectory[-2]["event"] == "model_error"
    with pytest.raises(ModelError) as info:
        run_agent(lambda body: {"error_status": 401}, AgentHarness())
    assert info.value.kind == "fatal"


def test_attachments_and_a_collector_make_the_answer() -> None:
    seen: dict[str, Any] = {}

    def collect(task: Task, workspace: Path, final: str) -> str:
        seen["final"] = final
        return (workspace / "result.txt").read_text()

    def policy(body: dict) -> dict:
        if not tool_messages(body):
            code = "data = open('in/data.txt').read(); open('result.txt','w').write(data.upper())"
            return reply(tool_calls=[call("python", {"code": code}, "p1")])
        return reply("done")

    task = Task(id="t2", input="Upper-case in/data.txt into result.txt.", answer="HELLO",
                meta={"files": {"in/data.txt": {"text": "hello"}}})
    rollout, requests = run_agent(policy, AgentHarness(collect=collect), task)
    assert rollout.answer == "HELLO" and seen["final"] == "done"
    assert "Files in your working folder: in/data.txt" in requests[0]["messages"][1]["content"]


def test_the_workspace_is_removed_after_the_run() -> None:
    where: list[str] = []

    def policy(body: dict) -> dict:
        if not tool_messages(body):
            return reply(tool_calls=[call("python", {"code": "import os; print(os.getcwd())"},
                                          "w1")])
        where.append(tool_messages(body)[0]["content"].strip())
        return reply("FINAL: ok")

    run_agent(policy, AgentHarness())
    assert where and where[0].startswith("/") and not Path(where[0]).exists()


def test_text_protocol_runs_code_blocks_and_json_calls() -> None:
    def policy(body: dict) -> dict:
        assert "tools" not in body  # no native tools in the text protocol
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        if turn == 0:
            return reply("Let me compute.\n```python\nprint(6 * 7)\n```")
        if turn == 1:
            assert body["messages"][-1]["role"] == "user"
            assert "Output of python:\n42" in body["messages"][-1]["content"]
            return reply('<tool_call>{"name": "weather", "arguments": {"city": "Rome"}}'
                         "</tool_call>")
        assert "Rome: 21C" in body["messages"][-1]["content"]
        return reply("FINAL: 42")

    rollout, requests = run_agent(policy, AgentHarness(protocol="text", tools=[weather]))
    assert rollout.answer == "42" and len(requests) == 3
    system = requests[0]["messages"][0]["content"]
    assert "```python" in system and "FINAL:" in system and "weather(city, units)" in system
    calls = [e for e in rollout.trajectory if e["role"] == "assistant" and "tool_calls" in e]
    assert [c["tool_calls"][0]["function"]["name"] for c in calls] == ["python", "weather"]


def test_text_protocol_final_with_code_waits_for_clean_code() -> None:
    def policy(body: dict) -> dict:
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        if turn == 0:
            return reply("```python\nopen('out.txt','w').write(str(1/0))\n```\nFINAL: done")
        assert "was not accepted" in body["messages"][-1]["content"]
        return reply("```python\nopen('out.txt','w').write('ok')\n```\nFINAL: fixed")

    rollout, requests = run_agent(policy, AgentHarness(protocol="text"))
    assert rollout.answer == "fixed" and len(requests) == 2
    assert rollout.trajectory[-1]["files"] == {"out.txt": 2}


def test_long_observations_are_cut_for_the_model_and_the_record() -> None:
    def policy(body: dict) -> dict:
        if not tool_messages(body):
            return reply(tool_calls=[call("python", {"code": "print('x' * 20000)"}, "big")])
        return reply("FINAL: ok")

    harness = AgentHarness(observation_chars=500, trajectory_chars=300)
    rollout, requests = run_agent(policy, harness)
    sent = tool_messages(requests[1])[0]["content"]
    assert len(sent) <= 500 and "characters cut" in sent
    recorded = [e for e in rollout.trajectory if e["role"] == "tool"][0]["content"]
    assert len(recorded) <= 300


def test_schema_is_derived_from_the_signature() -> None:
    tool = tool_from_function(weather)
    assert tool.description == "Today's temperature in a city."
    assert tool.parameters == {
        "type": "object", "additionalProperties": False, "required": ["city"],
        "properties": {
            "city": {"type": "string", "description": "the city's name"},
            "units": {"enum": ["c", "f"], "type": "string", "default": "c",
                      "description": "c for Celsius, f for Fahrenheit"},
        },
    }
    assert asyncio.run(tool.call({"city": "Oslo", "units": "f"})) == "Oslo: 21F"
    with pytest.raises(ToolError, match="units"):
        asyncio.run(tool.call({"city": "Oslo", "units": "k"}))

    async def total(values: list[float], scale: int = 1) -> dict:
        """Sum of values, scaled."""
        return {"total": sum(values) * scale}

    summed = tool_from_function(total)
    assert summed.parameters["properties"]["values"] == {"type": "array",
                                                         "items": {"type": "number"}}
    assert asyncio.run(summed.call('{"values": [1, 2.5], "scale": 2}')) == '{"total": 7.0}'

    def untyped(x):  # noqa: ANN001, ANN202
        return x

    with pytest.raises(TypeError, match="no type hint"):
        tool_from_function(untyped)


def test_text_parsing_helpers() -> None:
    text = ("First\n```python\nprint(1)\n```\nthen\n```json\n"
            '{"name": "read_file", "arguments": {"path": "a.txt"}}\n```\n'
            "```json\n{\"not\": \"a call\"}\n```")
    calls = parse_text_actions(text)
    assert [c["function"]["name"] for c in calls] == ["python", "read_file"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"code": "print(1)\n"}
    assert parse_text_actions("no code here") == []
    assert final_answer("work...\nFINAL: 12.5") == ("12.5", True)
    assert final_answer("**Final answer:** 7") == ("7", True)
    assert final_answer("just 7") == ("just 7", False)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="protocol"):
        AgentHarness(protocol="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        AgentHarness(tools=[tool_from_function(weather, name="python")])


# -- from config to harness, and the training loop with an agent target -----------------------

def test_config_builds_the_configured_harness() -> None:
    from skilltrain.config import ConfigError, parse_config
    from skilltrain.harness import ChatHarness, CommandHarness, make_harness
    from skilltrain.run_setup import build_harness

    cfg = parse_config({"harness": "agent", "agent": {"max_turns": 2, "timeout": 5,
                                                      "tools": ["tests_tools:unused"]}})
    assert cfg.agent.protocol == "auto"
    with pytest.raises(ConfigError, match="agent"):
        build_harness(cfg)  # the user tool's module does not exist
    local = make_harness("agent", target_model="local:0.5b", agent={"max_turns": 2})
    remote = make_harness("agent", target_model="openai:gpt-4o-mini",
                          agent={"tools": ["test_agent_harness:weather"]})
    assert (local.protocol, local.max_turns) == ("text", 2)
    assert remote.protocol == "tools" and remote.user_tools[0].name == "weather"
    assert isinstance(make_harness("chat"), ChatHarness)
    command = make_harness("command", command={"cmd": "{python} -c pass", "timeout": 9})
    assert isinstance(command, CommandHarness) and command.limits.timeout_s == 9
    with pytest.raises(ConfigError, match="needs a command"):
        build_harness(parse_config({"harness": "command"}))
    with pytest.raises(ConfigError, match="harness"):
        parse_config({"harness": "shell"})


def test_a_suite_that_needs_the_agent_harness_says_so(tmp_path: Path) -> None:
    from skilltrain import Trainer
    from skilltrain.config import ConfigError
    from skilltrain.run_setup import RunParts, resolve_inputs

    pytest.importorskip("openpyxl")
    trainer = Trainer({"suite": "spreadsheet", "out": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="--harness agent"):
        resolve_inputs(trainer.config, RunParts(), None, None)
    agent = Trainer({"suite": "spreadsheet", "harness": "agent"})
    splits, skill, scorer = resolve_inputs(agent.config, RunParts(), None, None)
    assert skill.name == "spreadsheet" and splits.train


def test_training_loop_runs_with_the_agent_harness(tmp_path: Path) -> None:
    import re

    from scripted import GOOD_RULE, Script, make_tasks

    from skilltrain import Trainer
    from skilltrain.models.base import Completion
    from skilltrain.models.fake import FakeModel
    from skilltrain.records import Usage

    def target(request: dict) -> Completion | str:
        """Adds with the python tool, then answers bare only if the skill says so."""
        messages = request["messages"]
        assert [t["function"]["name"] for t in request["tools"]][:1] == ["python"]
        done = [m for m in messages if m["role"] == "tool"]
        if not done:
            a, b = re.findall(r"\d+", messages[1]["content"])[:2]
            return Completion(text="", usage=Usage(prompt_tokens=50, completion_tokens=9,
                                                   calls=1),
                              tool_calls=[call("python", {"code": f"print({a} + {b})"}, "c1")])
        total = done[0]["content"].strip()
        return total if GOOD_RULE in messages[0]["content"] else f"The answer is {total}."

    script = Script(analyst_plan=["good"])
    config = {"out": str(tmp_path / "run"), "scorer": "exact", "harness": "agent",
              "agent": {"protocol": "tools", "max_turns": 3}, "gate": {"rule": "strict"},
              "train": {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2,
                        "lr_min": 1, "max_steps": 1}}
    trainer = Trainer(config, target=FakeModel(target), optimizer=FakeModel(script.respond))
    trainer.fit(make_tasks(12), "---\nname: adder\ndescription: sums\n---\nAdd the numbers.\n")
    summary = trainer.summary_
    assert summary["val"]["initial"] == 0.0 and summary["val"]["best"] == 1.0
    assert GOOD_RULE in trainer.best_skill_.text
    rollouts = (trainer.run_dir_ / "steps/e01-s001/rollouts.jsonl").read_text().splitlines()
    first = json.loads(rollouts[0])
    assert [e["role"] for e in first["trajectory"]][:3] == ["user", "assistant", "tool"]
    assert first["usage"]["calls"] == 2
