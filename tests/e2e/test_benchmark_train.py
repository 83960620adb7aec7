"""`skilltrain train --benchmark NAME --data-dir tests/fixtures/NAME` over HTTP against our
scripted server (tests/e2e/scripted_server.py)."""

from __future__ import annotations

import json
from pathlib import Path

from scripted import GOOD_RULE, HARMFUL_RULE

from e2e.test_anthropic_train import messages_server  # noqa: F401 - the fixture
from e2e.test_cli_train import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRAIN = ["train", "--target", "openai:scripted-target", "--optimizer", "openai:scripted-opt",
         "--epochs", "1", "--batch-size", "6", "--lr", "2", "--gate", "strict", "--quiet",
         "--proposals", "0", "--no-screen", "--no-demonstrations", "--no-attribution"]


def train(name: str, server, tmp_path: Path, *extra: str) -> dict:
    """`skilltrain train --benchmark NAME` on its fixture; the run's summary (exit 0 asserted)."""
    out = tmp_path / "run"
    proc = cli([*TRAIN, "--benchmark", name, "--data-dir", str(FIXTURES / name), *extra,
                "--out", str(out)], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "summary.json").read_text())


def target_prompts(server) -> list[str]:
    return [r["messages"][-1]["content"] for r in server.requests()
            if r["model"] == "scripted-target"]


def test_searchqa_trains_over_http(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    out = tmp_path / "run"
    summary = train("searchqa", server, tmp_path)
    # the scripted target says "The answer is N." (wrong under SQuAD EM) until the good rule
    assert summary["val"]["best"] > summary["val"]["initial"]
    assert summary["test"]["best"] > summary["test"]["initial"]
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best
    prompts = target_prompts(server)
    assert prompts and all(p.startswith("Question: What is ") for p in prompts)
    assert all(len(p) < searchqa_limit() for p in prompts)  # the long context was cut


def searchqa_limit() -> int:
    from skilltrain.benchmarks.searchqa import CONTEXT_CHARS

    return CONTEXT_CHARS + 200  # question and instruction around the cut context


def test_livemath_trains_over_http_with_shuffled_choices(tmp_path, scripted_server):
    from skilltrain.benchmarks import get_benchmark

    server = scripted_server("harmful,good")
    summary = train("livemath", server, tmp_path)
    # the scripted target answers with a number, never a label: every item is wrong
    assert summary["test"]["initial"] == 0.0
    splits = get_benchmark("livemath").load(FIXTURES / "livemath")
    sent = set(target_prompts(server))
    assert {t.input for t in splits.test} <= sent  # the shuffled choices, as loaded


def test_missing_payload_exits_2_with_one_line(tmp_path):
    (tmp_path / "split_manifest.json").write_text('{"train": ["a"], "val": ["b"]}')
    proc = cli([*TRAIN, "--benchmark", "searchqa", "--data-dir", str(tmp_path),
                "--out", str(tmp_path / "run")], None, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "searchqa.jsonl" in lines[0] and "github.com" in lines[0]
    assert not (tmp_path / "run").exists()


def test_eval_benchmark_scores_its_test_split(tmp_path, scripted_server):
    from skilltrain.benchmarks import get_benchmark

    server = scripted_server()
    plain = tmp_path / "plain.md"
    plain.write_text(get_benchmark("searchqa").skill)
    good = tmp_path / "good.md"
    good.write_text(get_benchmark("searchqa").skill + GOOD_RULE + "\n")
    runs = [cli(["eval", "--skill", str(s), "--benchmark", "searchqa", "--data-dir",
                 str(FIXTURES / "searchqa"), "--target", "openai:scripted-target", "--json"],
                server.base_url, tmp_path) for s in (plain, good)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    assert [json.loads(r.stdout)["score"] for r in runs] == [0.0, 1.0]
    manifest = json.loads((FIXTURES / "searchqa" / "split_manifest.json").read_text())
    assert len(target_prompts(server)) == 2 * len(manifest["test"])


def test_officeqa_trains_with_the_paper_preset_and_agent_tools(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    out = tmp_path / "run"
    # --preset paper sets harness: agent for OfficeQA; the flags in TRAIN override its sizes
    proc = cli([*TRAIN, "--benchmark", "officeqa", "--data-dir", str(FIXTURES / "officeqa"),
                "--preset", "paper", "--out", str(out)], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val"]["best"] > summary["val"]["initial"]
    assert GOOD_RULE in (out / "best_skill.md").read_text()
    target = [r for r in server.requests() if r["model"] == "scripted-target"]
    names = [t["function"]["name"] for t in target[0]["tools"]]
    assert names == ["glob", "grep", "read_file", "python"]  # OfficeQA's own agent defaults
    config = (out / "config.yaml").read_text()
    assert "minibatch_size: 8" in config and "batch_size: 6" in config  # preset, then flags
    assert "max_turns: 20" in config  # the benchmark's turn limit, recorded for a resume


def test_alfworld_plays_our_fake_environment_over_http(tmp_path, scripted_server):
    from e2e.test_environment_train import cli as env_cli

    server = scripted_server("good", ["--game"])  # the target plays `inc` only with GOOD_RULE
    cfg = tmp_path / "run.yaml"
    cfg.write_text("environment: {env: 'agents.fake_alfworld:FakeAlfworld', max_steps: 4}\n")
    out = tmp_path / "run"
    proc = env_cli([*TRAIN, "--config", str(cfg), "--benchmark", "alfworld", "--data-dir",
                    str(FIXTURES / "alfworld"), "--harness", "environment", "--max-steps", "1",
                    "--out", str(out)], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val"]["initial"] == 0.0 and summary["val"]["best"] == 1.0
    assert GOOD_RULE in (out / "best_skill.md").read_text()
    target = [r for r in server.requests() if r["model"] == "scripted-target"]
    assert any("Your task is to: Your task: bring the counter up" in r["messages"][1]["content"]
               for r in target)
    assert any(m["content"] == "Nothing happens." for r in target for m in r["messages"])


def test_spreadsheetbench_runs_cases_through_the_agent_over_http(tmp_path, scripted_server):
    import pytest

    pytest.importorskip("openpyxl")
    server = scripted_server("harmful,good")
    out = tmp_path / "run"
    proc = cli([*TRAIN, "--benchmark", "spreadsheetbench", "--data-dir",
                str(FIXTURES / "spreadsheetbench"), "--harness", "agent", "--out", str(out)],
               server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    # the scripted target answers in words and writes no workbook: every case fails, scored
    assert summary["test"]["initial"] == 0.0
    analysts = [r["messages"][-1]["content"] for r in server.requests()
                if (r.get("response_format") or {}).get("json_schema", {}).get("name")
                == "AnalystReply" and "got wrong" in r["messages"][-1]["content"]]
    assert analysts and "0/2 cases pass" in analysts[0]
    assert "case1/output.xlsx was not written" in analysts[0]
    target = [r for r in server.requests() if r["model"] == "scripted-target"]
    assert target and all(r.get("tools") for r in target)


def _png_of(url: str) -> bytes:
    import base64

    head, _, data = url.partition(";base64,")
    assert head == "data:image/png"
    return base64.b64decode(data)


def test_docvqa_sends_the_page_image_over_http(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    out = tmp_path / "run"
    summary = train("docvqa", server, tmp_path)
    assert summary["val"]["best"] > summary["val"]["initial"]  # ANLS of "The answer is N." is 0
    target = [r for r in server.requests() if r["model"] == "scripted-target"]
    pages = {(FIXTURES / "docvqa" / "documents" / f"page{i:02d}.png").read_bytes()
             for i in range(16)}
    for request in target:
        text, image = request["messages"][-1]["content"]
        assert text["type"] == "text" and text["text"].startswith("What is ")
        assert _png_of(image["image_url"]["url"]) in pages
    # the run's records keep the question, never the image data
    rollouts = "".join(p.read_text(errors="replace") for p in out.rglob("*.jsonl"))
    assert "What is " in rollouts and "base64," not in rollouts


def test_docvqa_image_goes_as_an_anthropic_image_block(tmp_path, messages_server):  # noqa: F811
    import os
    import subprocess
    import sys

    from skilltrain.benchmarks import get_benchmark

    server = messages_server()
    skill = tmp_path / "SKILL.md"
    skill.write_text(get_benchmark("docvqa").skill)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="sk-ant-test-key")
    proc = subprocess.run([sys.executable, "-m", "skilltrain.cli", "eval", "--skill", str(skill),
                           "--benchmark", "docvqa", "--data-dir", str(FIXTURES / "docvqa"),
                           "--target", "anthropic:scripted-target", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bodies = [e["body"] for e in server.entries()]
    assert len(bodies) == 4  # the manifest's test items
    for body in bodies:
        blocks = body["messages"][-1]["content"]
        assert [b["type"] for b in blocks] == ["text", "image"]
        source = blocks[1]["source"]
        assert source["type"] == "base64" and source["media_type"] == "image/png"
        assert _png_of(f"data:image/png;base64,{source['data']}").startswith(b"\x89PNG")
