"""One real training step with the embedded llama.cpp server (the 0.5B model in both roles):
the optimizer's constrained JSON parses into edits, the gate decides, the run folder is whole."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.local


def _installed() -> bool:
    try:
        import xllamacpp  # noqa: F401

        from skilltrain.local.assets import available
    except ImportError:
        return False
    return available("0.5b")


@pytest.mark.skipif(not _installed(), reason="needs pip install 'skilltrain[local]'")
def test_one_step_on_tiny_suite_with_real_local_model(tmp_path):
    out = tmp_path / "run"
    cfg = tmp_path / "run.yaml"
    # append-only edits: the 0.5B model cannot mis-copy an anchor, so the gate always has work
    cfg.write_text("train: {edit_ops: [append], analyse_successes: false}\n"
                   "optimizer: {max_tokens: 600}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "skilltrain.cli", "train", "--config", str(cfg), "--suite",
         "house-tiny", "--target", "local:0.5b", "--optimizer", "local:0.5b", "--epochs", "1",
         "--batch-size", "8", "--lr", "2", "--max-steps", "1", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("config.yaml", "events.jsonl", "skills/v0000.md", "best_skill.md",
                 "summary.json", "state.json", "steps/e01-s001/rollouts.jsonl",
                 "steps/e01-s001/analysts.json", "steps/e01-s001/selection.json"):
        assert (out / name).is_file(), name
    analysts = json.loads((out / "steps/e01-s001/analysts.json").read_text())
    assert analysts["failed_calls"] == 0  # every optimizer reply parsed against its schema
    edits = [e for p in analysts["patches"] for e in p["edits"]]
    assert edits and all(e["op"] == "append" and e["content"].strip() for e in edits)
    selection = json.loads((out / "steps/e01-s001/selection.json").read_text())
    assert [e["status"] for e in selection["edits"]] == ["applied"] * len(selection["edits"])
    gate = json.loads((out / "steps/e01-s001/gate.json").read_text())
    assert isinstance(gate["accepted"], bool) and gate["items_used"] >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["total"] == 1
    assert summary["steps"]["accepted"] + summary["steps"]["rejected"] == 1
    assert summary["usage"]["target"]["calls"] > 0 and summary["usage"]["optimizer"]["calls"] > 0
    assert summary["infra_failures"]["total"] == 0
    assert all(isinstance(summary["test"][k], float) for k in ("initial", "best", "final"))
