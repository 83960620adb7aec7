"""One real training step with the embedded llama.cpp server (the 0.5B model in both roles):
the optimizer's constrained JSON parses into edits, the candidates are screened, the gate
decides when one passes, the run folder is whole."""

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
                 "steps/e01-s001/analysts.json", "steps/e01-s001/selection.json",
                 "steps/e01-s001/screen.json", "steps/e01-s001/checks.json"):
        assert (out / name).is_file(), name
    analysts = json.loads((out / "steps/e01-s001/analysts.json").read_text())
    assert analysts["failed_calls"] == 0  # every optimizer reply parsed against its schema
    edits = [e for p in analysts["patches"] for e in p["edits"]]
    assert all(e["op"] == "append" and e["content"].strip() for e in edits)
    assert any(p["side"] == "rule" for p in analysts["patches"])  # the sampled rule proposals
    screen = json.loads((out / "steps/e01-s001/screen.json").read_text())
    names = [c["name"] for c in screen["candidates"]]
    assert "examples" in names  # the demonstrations candidate is always proposed on failures
    assert any(c["screen"]["items"] >= 1 for c in screen["candidates"])
    # on a tiny train split the examples come from the batch itself: those items are left out
    # of that candidate's screen, and a candidate screened on nothing cannot pass
    assert all(c["screen"]["passed"] is False for c in screen["candidates"]
               if c["screen"]["items"] == 0)
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["steps"]
    assert steps["total"] == 1
    assert steps["accepted"] + steps["rejected"] + steps["screened"] == 1
    gate_file = out / "steps/e01-s001/gate.json"
    assert gate_file.is_file() == (steps["screened"] == 0)  # gated only if one passed screening
    if gate_file.is_file():
        gate = json.loads(gate_file.read_text())
        assert isinstance(gate["accepted"], bool) and gate["items_used"] >= 1
        assert gate["candidate"] in names
    assert summary["usage"]["target"]["calls"] > 0 and summary["usage"]["optimizer"]["calls"] > 0
    assert summary["infra_failures"]["total"] == 0
    assert all(isinstance(summary["test"][k], float) for k in ("initial", "best", "final"))
