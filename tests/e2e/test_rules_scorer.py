"""The rules scorer end to end: `skilltrain eval` with per-task rules and `skilltrain train`
with config rules, as subprocesses against the scripted HTTP server; the regex of a rule never
reaches an optimizer prompt, only the words of its failure do."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from scripted import GOOD_RULE, HARMFUL_RULE, make_tasks

from e2e.test_cli_train import SKILL, cli

PATTERN = r"^\d{1,4}$"  # a bare number; the scripted target gives one only under GOOD_RULE


def write_tasks(tmp: Path, rules: list | None) -> Path:
    data = tmp / "tasks.jsonl"
    rows = [{**t, **({"rules": rules} if rules else {})} for t in make_tasks(24)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_eval_scores_by_each_tasks_rules(tmp_path, scripted_server):
    server = scripted_server()
    data = write_tasks(tmp_path, [{"regex": PATTERN}, {"no_refusal": True}])
    weak, good = tmp_path / "SKILL.md", tmp_path / "good.md"
    weak.write_text(SKILL)
    good.write_text(SKILL + GOOD_RULE + "\n")
    args = ["eval", "--data", str(data), "--target", "openai:scripted-target", "--scorer",
            "rules", "--json"]
    low = cli([*args, "--skill", str(weak)], server.base_url, tmp_path)
    high = cli([*args, "--skill", str(good)], server.base_url, tmp_path)
    assert low.returncode == 0 and high.returncode == 0, low.stderr + high.stderr
    assert json.loads(low.stdout)["score"] == 0.0  # "The answer is N." fails the regex
    assert json.loads(high.stdout)["score"] == 1.0


def test_eval_with_a_bad_task_rule_exits_2_naming_it(tmp_path, scripted_server):
    server = scripted_server()
    data = write_tasks(tmp_path, [{"regex": "(unclosed"}])
    skill = tmp_path / "SKILL.md"
    skill.write_text(SKILL)
    proc = cli(["eval", "--data", str(data), "--skill", str(skill), "--target",
                "openai:scripted-target", "--scorer", "rules"], server.base_url, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "rule 1 (regex): not a valid regular expression" in proc.stderr


def test_train_with_config_rules_hides_the_regex_from_the_optimizer(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    data = write_tasks(tmp_path, None)
    skill = tmp_path / "SKILL.md"
    skill.write_text(SKILL)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"scorer": {"name": "rules", "rules": [
        {"regex": PATTERN}, {"max_chars": 8}, {"not_contains": "words"}]}}))
    out = tmp_path / "run"
    proc = cli(["train", "--config", str(config), "--data", str(data), "--skill", str(skill),
                "--out", str(out), "--target", "openai:scripted-target", "--optimizer",
                "openai:scripted-opt", "--epochs", "1", "--batch-size", "6", "--lr", "2",
                "--gate", "strict", "--quiet", "--proposals", "0", "--no-screen",
                "--no-demonstrations"], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["accepted"] == 1 and summary["steps"]["rejected"] == 1
    assert summary["val"]["best"] == 1.0 and summary["val"]["initial"] == 0.0
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and HARMFUL_RULE not in best
    optimizer = [json.dumps(r["messages"]) for r in server.requests()
                 if r["model"] == "scripted-opt"]
    assert optimizer
    assert not any(PATTERN in text or json.dumps(PATTERN)[1:-1] in text for text in optimizer)
    assert any("does not have the required form" in text for text in optimizer)
