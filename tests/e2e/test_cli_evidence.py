"""`skilltrain compare`, `eval --target A --target B` and `train --seeds` as subprocesses
against the scripted HTTP server: the verdict, table and flips a user reads, the per-target
table, the per-seed rows with the mean gain's interval, and their exit codes."""

from __future__ import annotations

import json
import math
import re
import socket
from pathlib import Path

import pytest
from scripted import GOOD_RULE, make_tasks

from skilltrain.stats import wilson

from .test_cli_train import SECRET, SKILL, TRAIN, cli, write_inputs

TARGET = ["--target", "openai:scripted-target", "--scorer", "exact"]


def compare_inputs(tmp: Path) -> tuple[Path, Path, Path]:
    """30 sums; on the first 8 the reference is the sentence the plain skill makes the target
    write, so skill A (plain) is right on those 8 only and skill B (the rule) on the other 22."""
    rows = make_tasks(30)
    for row in rows[:8]:
        row["answer"] = f"The answer is {row['answer']}."
    data = tmp / "tasks.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = tmp / "a.md", tmp / "b.md"
    a.write_text(SKILL)
    b.write_text(SKILL + GOOD_RULE + "\n")
    return data, a, b


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def test_compare_over_http_verdict_table_and_flips(tmp_path, scripted_server):
    server = scripted_server()
    data, a, b = compare_inputs(tmp_path)
    proc = cli(["compare", str(a), str(b), "--data", str(data), *TARGET], server.base_url,
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)  # the README shows this output
    lines = proc.stdout.splitlines()
    p = 2 * sum(math.comb(30, j) for j in range(9)) / 2**30  # McNemar, 8 vs 22 discordant
    assert re.fullmatch(rf"B is better than A: \+0\.467 \(0\.267 -> 0\.733\), p={p:.3f}, "
                        r"95% \[\+0\.\d{3}, \+0\.\d{3}\], n=30", lines[0]), lines[0]
    assert "exact McNemar on 30 discordant items (A only 8, B only 22)" in proc.stdout
    total = next(ln for ln in lines if ln.startswith("total"))
    assert total.split() == ["total", "30", "0.267", "0.733", "+0.467", "8", "22", "0"]
    a_right = next(ln for ln in lines if ln.startswith("A right, B wrong (8): "))
    assert a_right.endswith(", ".join(f"add-{i:02d}" for i in range(8)))
    assert "B right, A wrong (22): add-08, add-09" in proc.stdout
    # JSON, with two samples per item: distinct requests (seed 0 and 1), pairs per sample
    before = len(server.requests())
    proc = cli(["compare", str(a), str(b), "--data", str(data), *TARGET, "--samples", "2",
                "--json"], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["test"] == "mcnemar" and result["winner"] == "B" and result["n"] == 30
    assert result["by_type"][-1] == {"type": "total", "n": 30, "a": 0.266667, "b": 0.733333,
                                     "diff": 0.466667, "a_better": 16, "b_better": 44,
                                     "excluded": 0}
    sent = server.requests()[before:]
    assert len(sent) == 2 * 2 * 30 and sorted({r["seed"] for r in sent}) == [0, 1]


def test_compare_exit_codes(tmp_path, scripted_server):
    data, a, b = compare_inputs(tmp_path)
    bad = [(["--samples", "0"], "--samples 0"), (["--harness", "robot"], "robot"),
           ([], "hold the same skill")]
    for extra, said in bad:
        second = a if said == "hold the same skill" else b
        proc = cli(["compare", str(a), str(second), "--data", str(data), *TARGET, *extra],
                   "http://127.0.0.1:9/v1", tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert len(error_lines(proc.stderr)) == 1 and said in proc.stderr
    proc = cli(["compare", str(a), str(tmp_path / "none.md"), "--data", str(data), *TARGET],
               "http://127.0.0.1:9/v1", tmp_path)
    assert proc.returncode == 2 and "none.md" in proc.stderr
    server = scripted_server("good", ["--echo-auth-every", "1"])  # answers, never usefully
    proc = cli(["compare", str(a), str(b), "--data", str(data), *TARGET], server.base_url,
               tmp_path)
    assert proc.returncode == 1, proc.stderr
    [line] = error_lines(proc.stderr)
    assert line.startswith("error: nothing could be scored") and proc.stdout == ""


def test_eval_on_several_targets_prints_one_table_with_intervals(tmp_path, scripted_server):
    server = scripted_server("good", ["--deaf-model", "deaf-target"])
    data, _ = write_inputs(tmp_path)
    good = tmp_path / "good.md"
    good.write_text(SKILL + GOOD_RULE + "\n")
    with socket.socket() as s:  # a port nobody listens on: that target cannot be reached
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    args = ["eval", "--skill", str(good), "--data", str(data), "--scorer", "exact",
            "--target", "openai:scripted-target", "--target", "openai:deaf-target"]
    proc = cli(args, server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    head, first, second = proc.stdout.splitlines()
    assert head.split() == ["target", "score", "95%", "interval", "n", "failures"]
    assert first.split() == ["openai:scripted-target", "1.000", "[0.862,", "1.000]", "24", "0"]
    assert second.split() == ["openai:deaf-target", "0.000", "[0.000,", "0.138]", "24", "0"]
    proc = cli([*args, "--json"], server.base_url, tmp_path)
    rows = json.loads(proc.stdout)["targets"]
    assert [(r["target"], r["score"], r["n"]) for r in rows] == [
        ("openai:scripted-target", 1.0, 24), ("openai:deaf-target", 0.0, 24)]
    assert rows[0]["ci95"] == pytest.approx(wilson(24, 24), abs=1e-4)
    assert rows[0]["usage"]["target"]["calls"] == 24
    # every target unreachable: each row says why, and the exit code is 1 (mixed rows:
    # tests/test_transfer.py; here all targets share OPENAI_BASE_URL)
    dead = f"http://127.0.0.1:{refused}/v1"
    proc = cli(["eval", "--skill", str(good), "--data", str(data), "--scorer", "exact",
                "--target", "openai:a", "--target", "openai:b"], dead, tmp_path)
    assert proc.returncode == 1 and "unreachable" in proc.stdout
    single = cli(["eval", "--skill", str(good), "--data", str(data), "--scorer", "exact",
                  "--target", "openai:scripted-target"], server.base_url, tmp_path)
    assert single.stdout.startswith("score 1.0 on 24 tasks (0 infrastructure failures)")


def test_train_seeds_over_http_summary_resume_and_report(tmp_path, scripted_server):
    server = scripted_server("auto")  # stateless: every seed sees the same replies
    data, skill = write_inputs(tmp_path)
    out = tmp_path / "seeds"
    proc = cli([*TRAIN, "--data", str(data), "--skill", str(skill), "--out", str(out),
                "--seeds", "3"], server.base_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout[proc.stdout.index("seeds: "):])  # the README shows this summary
    assert proc.stdout.count("before / after") == 3  # each seed's own table, then the seeds'
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("== seed")] == [
        f"== seed {k} ({k + 1} of 3) -> {out / f'seed-{k}'}" for k in range(3)]
    seeds = json.loads((out / "seeds.json").read_text())
    for row in seeds["rows"]:
        summary = json.loads((out / row["folder"] / "summary.json").read_text())
        assert row["test_gain"] == summary["test"]["best"] - summary["test"]["initial"]
        assert row["accepted"] == summary["steps"]["accepted"] == 1
    mean = seeds["test_gain"]["mean"]
    assert mean == 1.0 and seeds["test_gain"]["ci95"] == [1.0, 1.0]
    assert "mean test gain +1.000, 95% [+1.000, +1.000] (Student t over 3 seeds)" in proc.stdout
    rows = [ln.split() for ln in proc.stdout.splitlines() if re.match(r"\d\s", ln)]
    assert [r[0] for r in rows] == ["0", "1", "2"] and all(r[5] == "+1.000" for r in rows)
    # finished seeds are read, not rerun; `resume` on the folder prints the same summary
    before = len(server.requests())
    again = cli(["resume", str(out), "--quiet"], server.base_url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(server.requests()) == before
    assert "finished earlier, not rerun" in again.stderr
    assert again.stdout.splitlines()[-3] == proc.stdout.splitlines()[-3]  # the gain line
    report = cli(["report", str(out)], None, tmp_path)
    assert report.returncode == 0 and report.stdout.strip() == str(out / "report.html")
    page = (out / "report.html").read_text()
    assert all(f'href="seed-{k}/report.html"' in page for k in range(3))
    for path in out.rglob("*"):  # the API key never reaches a seed's folder or the index
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    bad = cli([*TRAIN, "--data", str(data), "--skill", str(skill), "--out",
               str(out / "seed-0"), "--seeds", "2"], server.base_url, tmp_path)
    assert bad.returncode == 2 and "a single run's folder" in bad.stderr
