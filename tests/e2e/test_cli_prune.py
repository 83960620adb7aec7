"""`skilltrain train --prune` over HTTP: the end-of-run stages (pruning, attribution, the sealed
test count) through the real CLI, against our scripted OpenAI-compatible server."""

from __future__ import annotations

import json

from scripted import GOOD_RULE, HARMFUL_RULE

from .test_cli_train import SECRET, TRAIN, cli, write_inputs

DEAD = "Be polite and friendly to the user at all times, whatever they ask."


def test_train_with_prune_over_http(tmp_path, scripted_server):
    server = scripted_server("harmful,good")
    data, skill = write_inputs(tmp_path)
    skill.write_text(skill.read_text() + "\n" + DEAD + "\n")
    out = tmp_path / "run"
    proc = cli([*TRAIN, "--data", str(data), "--skill", str(skill), "--out", str(out),
                "--prune"], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    best = (out / "best_skill.md").read_text()
    assert GOOD_RULE in best and DEAD not in best and HARMFUL_RULE not in best
    assert best.startswith("---\nname: adder\n")  # front matter is never pruned
    summary = json.loads((out / "summary.json").read_text())
    p = summary["prune"]
    assert p["kept"] >= 1 and p["tokens"]["after"] < p["tokens"]["before"]
    refused = [t for t in p["tried"] if not t["kept"]]
    assert [t["preview"] for t in refused] == [GOOD_RULE]
    assert summary["test"]["best"] == 1.0 >= summary["test"]["unpruned"]
    # the accepted edit fixed every item the starting skill missed, on val and test
    entry = summary["attribution"]["entries"][0]
    assert entry["val"]["broke"] == [] and len(entry["val"]["fixed"]) == summary["sizes"]["val"]
    assert len(entry["test"]["fixed"]) == summary["sizes"]["test"]
    assert summary["test_seen"] == 1
    assert summary["test_looks"][summary["attribution"]["skill"]]["labels"] == ["best"]
    report = cli(["report", str(out)], None, tmp_path)
    assert report.returncode == 0, report.stderr
    page = (out / "report.html").read_text()
    assert f"Tokens {p['tokens']['before']} → {p['tokens']['after']}" in page
    assert "Attribution" in page and "Test looked at once" in page
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    # --no-attribution: no attribution, and no target call for it
    server2 = scripted_server("harmful,good")
    out2 = tmp_path / "run2"
    proc = cli([*TRAIN, "--data", str(data), "--skill", str(skill), "--out", str(out2),
                "--prune", "--no-attribution"], server2.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out2 / "summary.json").read_text())["attribution"] is None
    targets = [r for r in server.requests() if r["model"] == "scripted-target"]
    targets2 = [r for r in server2.requests() if r["model"] == "scripted-target"]
    assert len(targets) - len(targets2) == summary["attribution"]["new_evaluations"] > 0
