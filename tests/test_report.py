"""The HTML report, built from a real run folder written by the fake-model training loop, checked
both as text and as a page rendered by headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from scripted import GOOD_RULE, HARMFUL_RULE, Script, make_tasks
from typer.testing import CliRunner

from skilltrain import Skill, Trainer
from skilltrain.cli import app
from skilltrain.models.fake import FakeModel
from skilltrain.report import write_report

PAPER = {"proposals": 0, "screen": False, "demonstrations": False,
         "answer_form": False,
         "analyse_successes": True}  # the paper's loop

START = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
XSS = "<script>alert(1)</script>"
XSS_CONTENT = '<img src=x onerror="alert(2)">'


def hostile_script() -> Script:
    """The scripted optimizer, with markup in every edit's rationale and in the good edit's
    content: the report must show both as text, never as live HTML."""
    script = Script(analyst_plan=["harmful", "good"])
    respond = script.respond

    def wrapped(request: dict) -> str:
        reply = respond(request)
        try:
            data = json.loads(reply)
        except (TypeError, json.JSONDecodeError):
            return reply  # a target answer
        for edit in data.get("edits", []) if isinstance(data, dict) else []:
            edit["rationale"] = f"{edit['rationale']} {XSS}"
            if edit["content"] == GOOD_RULE:
                edit["content"] = f"{GOOD_RULE} {XSS_CONTENT}"
        return json.dumps(data)

    script.respond = wrapped  # type: ignore[method-assign]
    return script


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    model = FakeModel(hostile_script().respond)
    config = {"out": str(out), "scorer": "exact", "gate": {"rule": "strict"},
              "train": {"epochs": 2, "batch_size": 6, "minibatch_size": 8, "lr": 2, **PAPER,
                        "lr_min": 1}}
    trainer = Trainer(config, target=model, optimizer=model)
    trainer.fit(make_tasks(24), Skill(START))
    assert trainer.summary_["steps"]["accepted"] >= 1
    return out


@pytest.fixture(scope="module")
def report(run_dir: Path) -> str:
    return write_report(run_dir).read_text(encoding="utf-8")


def test_report_shows_scores_lineage_and_costs(run_dir: Path, report: str) -> None:
    assert (run_dir / "report.html").is_file()
    for title in ("Before and after", "Training curves", "Cost per stage",
                  "Test score per task type", "Skill lineage", "Rejected and skipped steps"):
        assert f"<h2>{title}</h2>" in report, title
    # the accepted rule is an added line of v0001's diff against v0000
    added = re.findall(r'<div class="add">(.*?)</div>', report)
    assert any(GOOD_RULE in line for line in added)
    assert "--- v0000.md" in report and "+++ v0001.md" in report
    # the rejected harmful rule is listed with the rejected steps, not in the lineage
    lineage, rejected = report.split('id="lineage"')[1].split('id="rejected"')
    assert HARMFUL_RULE not in lineage and HARMFUL_RULE in rejected.split('id="steps"')[0]
    # before/after numbers (the fake run goes from 0 to 1 on val and test) and per-type rows
    assert "+1.000" in report and "0.000" in report
    for kind in ("even", "odd"):
        assert f"<td>{kind}</td>" in report
    for stage in ("rollout", "reflect"):
        assert f"<td>{stage}</td>" in report


def test_report_is_self_contained(report: str) -> None:
    images = re.findall(r'<img [^>]*src="([^"]*)"', report)
    assert len(images) == 2
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in report and "https://" not in report
    assert "<link" not in report and "<script" not in report.lower()


def test_model_text_is_escaped(report: str) -> None:
    assert XSS not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert XSS_CONTENT not in report
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in report


def test_partial_runs_get_a_note_not_a_crash(run_dir: Path, tmp_path: Path) -> None:
    no_summary = tmp_path / "no_summary"
    shutil.copytree(run_dir, no_summary)
    (no_summary / "summary.json").unlink()
    (no_summary / "report.html").unlink(missing_ok=True)
    text = write_report(no_summary).read_text(encoding="utf-8")
    assert "summary.json is missing" in text
    assert "Skill lineage" in text and GOOD_RULE in text  # the steps are still shown
    assert "<td>rollout</td>" in text and "Costs are computed when the run ends" in text

    started = tmp_path / "started"
    started.mkdir()
    shutil.copy(run_dir / "config.yaml", started / "config.yaml")
    (started / "events.jsonl").write_text(json.dumps({"event": "start", "target": "m"}) + "\n")
    text = write_report(started).read_text(encoding="utf-8")
    assert "No training step has completed yet" in text and "<img" not in text

    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "nothing_here")


def test_cli_report_prints_the_path(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert missing.exit_code == 2


def _chromium() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed "
                    "(apt-get install chromium)")
def test_report_renders_in_chromium(run_dir: Path, report: str, tmp_path: Path) -> None:
    url = (run_dir / "report.html").resolve().as_uri()
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for text in ("skilltrain report", "Before and after", "Validation score per step",
                 "Skill lineage", "Cost per stage", "Test score per task type",
                 "answers carried extra words", GOOD_RULE, "+1.000", "1 accepted",
                 "1 rejected"):
        assert text in dom, text
    assert "<script" not in dom.lower()  # the injected script is text, not an element
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert not re.search(r"<img[^>]+src=\"x\"", dom)

    shot = tmp_path / "report.png"
    subprocess.run([*base, "--window-size=1280,2000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=60, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000


def test_sparse_or_odd_records_do_not_crash(run_dir: Path, tmp_path: Path) -> None:
    """Older or newer run folders may lack keys or hold nulls; the report degrades to dashes."""
    odd = tmp_path / "odd"
    shutil.copytree(run_dir, odd)
    state = json.loads((odd / "state.json").read_text())
    state["history"] = [{"id": r.get("id"), "step": r.get("step"), "outcome": r.get("outcome"),
                         **({"version": r["version"]} if "version" in r else {})}
                        for r in state["history"]] + [{"step": None, "outcome": "failed (x)"}]
    (odd / "state.json").write_text(json.dumps(state))
    summary = {k: None for k in json.loads((odd / "summary.json").read_text())}
    (odd / "summary.json").write_text(json.dumps(summary))
    for gate in odd.glob("steps/*/gate.json"):
        gate.write_text(json.dumps({"accepted": True, "evidence": {"per_item": list(range(999))},
                                    "reason": None}))
    (odd / "steps/e01-s002/selection.json").write_text(json.dumps({"edits": None}))
    (odd / "skills/v0000.md").unlink()
    text = write_report(odd).read_text(encoding="utf-8")
    assert "Skill lineage" in text and "is missing" in text and "more characters" in text
