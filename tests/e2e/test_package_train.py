"""A skill package trained end to end by `skilltrain train --skill DIR` as a subprocess, over
HTTP against our scripted server (tests/e2e/scripted_server.py --package).

The package has SKILL.md, one reference file (references/format.md), one script
(scripts/check.py) and one binary asset. The target follows the answer rule only when it
appears inside the reference file as its system prompt shows it. The optimizer first breaks the
script (refused before any evaluation, its error in the rejected buffer), then puts the rule into
the reference file (accepted by the gate); best_skill/ is the changed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripted import GOOD_RULE, make_tasks
from scripted_package import (
    BROKEN_SCRIPT,
    CHECK_PY,
    CHECK_SCRIPT,
    FORMAT_FILE,
    FORMAT_MD,
    LOGO,
    REFUSED_MARK,
    SKILL_MD,
    write_package,
)

SECRET = "sk-test-package-secret-456"
TRAIN = ["train", "--target", "openai:scripted-target", "--optimizer", "openai:scripted-opt",
         "--scorer", "exact", "--epochs", "1", "--batch-size", "6", "--lr", "2",
         "--gate", "strict", "--quiet", "--proposals", "0", "--no-screen", "--no-demonstrations",
         "--no-answer-form"]


def cli(args: list[str], base_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=SECRET)
    return subprocess.run([sys.executable, "-m", "skilltrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def schema_name(request: dict) -> str | None:
    return (request.get("response_format") or {}).get("json_schema", {}).get("name")


def test_package_trains_over_http(tmp_path, scripted_server):
    server = scripted_server("breakscript,good", ["--package"])
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    write_package(tmp_path / "adder")
    out = tmp_path / "run"
    proc = cli([*TRAIN, "--data", str(data), "--skill", str(tmp_path / "adder"), "--out",
                str(out)], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["accepted"] == 1 and summary["steps"]["rejected"] == 1
    assert summary["val"]["best"] > summary["val"]["initial"]
    assert summary["test"]["best"] > summary["test"]["initial"]
    # best_skill/ is the changed package: the reference file edited, the rest as it was
    best = out / "best_skill"
    assert summary["best_skill"] == str(best) and not (out / "best_skill.md").exists()
    assert (best / FORMAT_FILE).read_text() == FORMAT_MD + "\n" + GOOD_RULE + "\n"
    assert (best / "SKILL.md").read_text() == SKILL_MD
    assert (best / CHECK_SCRIPT).read_text() == CHECK_PY
    assert (best / "assets/logo.png").read_bytes() == LOGO
    assert (out / "skills/v0001" / FORMAT_FILE).read_text() == (best / FORMAT_FILE).read_text()
    # the broken script: refused before the gate, with its error, and never rolled out
    first = json.loads((out / "state.json").read_text())["history"][0]
    assert first["outcome"] == "rejected" and "SyntaxError" in first["reason"]
    assert not (out / "steps/e01-s001/gate.json").exists()
    assert (out / "steps/e01-s002/gate.json").is_file()
    rejected = json.loads((out / "state.json").read_text())["rejected"]
    assert rejected[0]["edits"][0]["file"] == CHECK_SCRIPT
    assert rejected[0]["reason"].startswith("scripts/check.py: python syntax error: SyntaxError")
    requests = server.requests()
    targets = [r for r in requests if r["model"] == "scripted-target"]
    systems = [m["content"] for r in targets for m in r["messages"] if m["role"] == "system"]
    assert systems and all(f'<skill_file path="{FORMAT_FILE}">' in s for s in systems)
    assert not any(BROKEN_SCRIPT.splitlines()[0] in s for s in systems)
    # the optimizer saw the package and named files; the second analyst read the refusal
    analysts = [r for r in requests if schema_name(r) == "AnalystReply"
                and "got wrong" in r["messages"][-1]["content"]]
    assert len(analysts) == 2
    prompt = analysts[0]["messages"][-1]["content"]
    assert f"- {FORMAT_FILE} (" in prompt and f"- {CHECK_SCRIPT} (" in prompt
    assert FORMAT_MD.strip() in prompt and "is_bare" in prompt
    edit_schema = analysts[0]["response_format"]["json_schema"]["schema"]
    assert "file" in json.dumps(edit_schema)
    assert REFUSED_MARK in analysts[1]["messages"][-1]["content"]
    assert "SyntaxError" in analysts[1]["messages"][-1]["content"]
    for path in out.rglob("*"):  # the key never reaches the run folder, packages included
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    # the report shows the change per file
    report = subprocess.run([sys.executable, "-m", "skilltrain.cli", "report", str(out)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    html = (out / "report.html").read_text()
    assert f"v0001/{FORMAT_FILE}" in html and GOOD_RULE in html
    lineage, rejected_part = html.split('id="rejected"', 1)
    assert "scripts/check.py" not in lineage.split('id="lineage"', 1)[1]  # only the reference
    assert "SyntaxError" in rejected_part  # the refused step says why
