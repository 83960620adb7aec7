"""The agent benchmarks over HTTP, against our tool-calling server on 127.0.0.1
(tests/agents/tool_server.py) driven by `skilltrain` run as a subprocess:

- `eval --benchmark officeqa` runs the agent harness with OfficeQA's glob/grep/read/python
  tools and turn limit; the scripted target finds the figure with glob and grep and answers it.
- `train --benchmark spreadsheetbench --set agent.single_shot=true`: one target request per
  rollout, its program runs once, nothing is fed back, and the workbooks it wrote are scored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from agents.tool_server import SALES_SOLVE, ToolServer, call, reply, tool_messages
from scripted import GOOD_RULE, Script

from e2e.test_benchmark_train import FIXTURES, TRAIN
from e2e.test_cli_train import cli
from skilltrain.benchmarks import get_benchmark
from skilltrain.benchmarks.officeqa import MAX_TURNS
from skilltrain.harness.agent import SINGLE_SHOT_TOOLS_INSTRUCTIONS

LEDGERS = {"unit-a": ("Unit A", {2021: "412 million", 2022: "430 million"}),
           "unit-b": ("Unit B", {2021: "77 million", 2022: "$81 million"})}
QUESTIONS = [("oq-a21", "unit-a", 2021), ("oq-b21", "unit-b", 2021), ("oq-a22", "unit-a", 2022),
             ("oq-b22", "unit-b", 2022)]


def office_folder(root: Path) -> Path:
    """An OfficeQA data folder whose answers are only in the documents, not the questions."""
    docs = root / "documents" / "ledgers"
    docs.mkdir(parents=True)
    for stem, (unit, years) in LEDGERS.items():
        lines = [f"# Ledger of {unit}", *(f"{unit} revenue {y}: {v}" for y, v in years.items())]
        (docs / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (root / "documents" / "notes.txt").write_text("Nothing about revenue here.\n")
    rows = ["uid,question,answer,source_files"]
    for uid, stem, year in QUESTIONS:
        unit, years = LEDGERS[stem]
        rows.append(f"{uid},What was the revenue of {unit} in {year}?,{years[year]},")
    (root / "officeqa.csv").write_text("\n".join(rows) + "\n")
    ids = [q[0] for q in QUESTIONS]
    (root / "split_manifest.json").write_text(json.dumps(
        {"train": ids[:1], "val": ids[1:2], "test": ids[2:]}))
    return root


def office_target(body: dict[str, Any]) -> dict[str, Any]:
    """glob for the ledgers, grep the unit's file (picked from glob's listing), answer what
    grep found."""
    question = body["messages"][1]["content"]
    unit, year = re.search(r"revenue of (Unit \w) in (\d{4})", question).groups()
    done = tool_messages(body)
    if not done:
        return reply(tool_calls=[call("glob", {"pattern": "documents/**/*.md"}, "g1")])
    if len(done) == 1:
        stem = unit.lower().replace(" ", "-")
        path = next(row.split("\t")[0] for row in done[0]["content"].splitlines()
                    if stem in row)
        return reply(tool_calls=[call("grep", {"pattern": f"{unit} revenue {year}",
                                               "path": path}, "r1")])
    found = re.search(r":\d+: .*?: (.+)$", done[1]["content"], re.M)
    return reply(f"FINAL: {found.group(1) if found else 'not found'}")


def eval_officeqa(tmp_path: Path, *extra: str) -> tuple[Any, list[dict]]:
    """`skilltrain eval --benchmark officeqa` on the fixture against the scripted target: the
    process and the requests the target saw."""
    data = office_folder(tmp_path / "officeqa")
    skill = tmp_path / "SKILL.md"
    skill.write_text(get_benchmark("officeqa").skill)
    with ToolServer(office_target) as server:
        proc = cli(["eval", "--skill", str(skill), "--benchmark", "officeqa", "--data-dir",
                    str(data), "--target", "openai:scripted-target", *extra, "--json"],
                   server.base_url, tmp_path)
        return proc, list(server.requests)


def test_eval_officeqa_uses_the_agent_harness_with_glob_and_grep(tmp_path):
    proc, requests = eval_officeqa(tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["score"], result["n"], result["infra_failures"]) == (1.0, 2, 0)
    assert len(requests) == 3 * 2  # glob, grep, answer for each test item
    for body in requests:
        assert [t["function"]["name"] for t in body["tools"]] == ["glob", "grep", "read_file",
                                                                 "python"]
    greps = [m["content"] for b in requests for m in tool_messages(b)
             if m["tool_call_id"] == "r1"]
    assert "documents/ledgers/unit-a.md:3: Unit A revenue 2022: 430 million" in greps
    # the chat harness (the old default) would have sent no tools at all


def test_eval_officeqa_max_turns_flag_cuts_the_benchmarks_limit(tmp_path):
    proc, requests = eval_officeqa(tmp_path, "--max-turns", "2")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["score"] == 0.0  # stopped before the answer: scored wrong
    assert len(requests) == 2 * 2 and MAX_TURNS > 2




def sheet_policy(script: Script):
    """The optimizer from tests/scripted.py; a target that writes right totals only when its
    skill states GOOD_RULE (else each one off by one), in one python call."""
    def policy(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("response_format"):
            return reply(script.respond(body))
        right = GOOD_RULE in body["messages"][0]["content"]
        code = SALES_SOLVE.replace("OFF", "" if right else "+ 1")
        return reply("FINAL: written", [call("python", {"code": code}, "p1")])

    return policy


def test_spreadsheetbench_single_shot_trains_over_http(tmp_path):
    pytest.importorskip("openpyxl")
    out = tmp_path / "run"
    with ToolServer(sheet_policy(Script(analyst_plan=["good"]))) as server:
        proc = cli([*TRAIN, "--benchmark", "spreadsheetbench", "--data-dir",
                    str(FIXTURES / "spreadsheetbench"), "--harness", "agent",
                    "--set", "agent.single_shot=true", "--out", str(out)],
                   server.base_url, tmp_path)
        requests = list(server.requests)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val"]["initial"] == 0.0 and summary["val"]["best"] == 1.0
    assert GOOD_RULE in (out / "best_skill.md").read_text()
    target = [b for b in requests if not b.get("response_format")]
    assert target and not any(tool_messages(b) for b in target)  # nothing was fed back
    assert all(b["messages"][0]["content"].startswith(SINGLE_SHOT_TOOLS_INSTRUCTIONS)
               for b in target)
    assert "single_shot: true" in (out / "config.yaml").read_text()
    rollouts = [json.loads(line) for path in out.glob("steps/*/rollouts.jsonl")
                for line in path.read_text().splitlines()]
    assert rollouts
    for rollout in rollouts:  # one reply, the program's run in the record for analysts
        roles = [e["role"] for e in rollout["trajectory"]]
        assert roles.count("assistant") == 1 and roles.count("tool") == 1
        tool = next(e for e in rollout["trajectory"] if e["role"] == "tool")
        assert "saved both cases" in tool["content"] and tool["error"] is False
