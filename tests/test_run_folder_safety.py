"""A run folder people can hand around and resume: resumes authenticate with the real keys and
only under the settings the run started with, usage survives kills and lost caches (or says it
did not), the folder is private, and no secret an endpoint echoes back ends up in it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e.conftest import ScriptedServer
from scripted import Script, make_tasks
from typer.testing import CliRunner

from skilltrain import Trainer
from skilltrain.cli import app
from skilltrain.config import ConfigError, dump_config, load_config, parse_config
from skilltrain.models.fake import FakeModel

TESTS = Path(__file__).resolve().parent
START = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"
TARGET_KEY = "sk-target-INLINE-0123456789abcdef"
OPT_KEY = "sk-optimizer-ENV-fedcba9876543210"
BODY_SECRET = "xbody-TOKEN-5555-aaaa-bbbb"
TRAIN = {"epochs": 1, "batch_size": 4, "lr": 2, "proposals": 0, "screen": False,
         "demonstrations": False, "max_steps": 3}


class Crash(Exception):
    """Stands in for a crash in the middle of a run (after at least one checkpoint)."""


def killed_in_step_two(tmp_path: Path, srv, monkeypatch) -> tuple[Path, Path]:
    """A run over HTTP (optimizer key from OPT_KEY_VAR, set here) killed as step 2 starts:
    its config file and its run folder, checkpointed after step 1."""
    cfg_path = write_config(tmp_path, srv)
    monkeypatch.setenv("OPT_KEY_VAR", OPT_KEY)
    with pytest.raises(Crash):
        Trainer(load_config(cfg_path), callbacks=[crash_at("step_start", 2)]).fit()
    return cfg_path, tmp_path / "run"


def crash_at(kind: str, nth: int):
    seen = {"n": 0}

    def callback(event: dict) -> None:
        if event["event"] == kind:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash(f"{kind} #{nth}")
    return callback


@pytest.fixture
def server(tmp_path):
    started: list[ScriptedServer] = []

    def start(*extra: str) -> ScriptedServer:
        d = tmp_path / f"server{len(started)}"
        d.mkdir()
        started.append(ScriptedServer(d, "auto", ["--auth-log", str(d / "auth.jsonl"),
                                                  *extra]))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def auth_log(srv: ScriptedServer) -> list[dict]:
    path = srv.log.parent / "auth.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def write_config(tmp: Path, srv: ScriptedServer, body_secret: bool = False) -> Path:
    """A run config over HTTP: the target's key inline, the optimizer's from OPT_KEY_VAR (and
    with `body_secret`, a token in its extra_body)."""
    data = tmp / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    (tmp / "SKILL.md").write_text(START)
    common = {"base_url": srv.base_url, "retries": 0, "timeout": 10.0}
    cfg = {"data": {"path": str(data)}, "skill": str(tmp / "SKILL.md"), "scorer": "exact",
           "gate": {"rule": "strict"}, "train": TRAIN, "out": str(tmp / "run"),
           "target": {"model": "scripted-target", "api_key": TARGET_KEY, **common},
           "optimizer": {"model": "scripted-opt", "api_key_env": "OPT_KEY_VAR", **common,
                         "extra_body": {"x-session-token": BODY_SECRET} if body_secret else {}}}
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def cli(args: list[str], **env: str):
    return CliRunner().invoke(app, args, env={"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None,
                                              **env})


# -- 1. inline keys on resume ------------------------------------------------------------------

def test_resume_after_an_inline_key_sends_the_real_key_or_refuses(tmp_path, server, monkeypatch):
    srv = server()
    cfg_path, root = killed_in_step_two(tmp_path, srv, monkeypatch)
    first = auth_log(srv)
    assert first and (root / "state.json").is_file()
    monkeypatch.delenv("OPT_KEY_VAR")

    before = snapshot(root)
    refused = cli(["resume", str(root), "--quiet"], OPT_KEY_VAR=OPT_KEY)
    assert refused.exit_code == 2
    message = refused.stderr.strip()
    assert "\n" not in message and "target.api_key" in message
    assert "--api-key-env" in message and "api_key_env" in message
    assert len(auth_log(srv)) == len(first)  # not one request sent
    assert snapshot(root) == before  # nothing written

    done = cli(["resume", str(root), "--quiet", "--api-key-env", "target=TARGET_KEY_VAR"],
               OPT_KEY_VAR=OPT_KEY, TARGET_KEY_VAR=TARGET_KEY)
    assert done.exit_code == 0, done.output
    resumed = auth_log(srv)[len(first):]
    want = {"scripted-target": f"Bearer {TARGET_KEY}", "scripted-opt": f"Bearer {OPT_KEY}"}
    assert {row["model"] for row in resumed} == set(want), "both roles called after resume"
    for row in first + resumed:
        assert row["authorization"] == want[row["model"]], row
    saved = yaml.safe_load((root / "config.yaml").read_text())
    assert saved["target"]["api_key_env"] == "TARGET_KEY_VAR"  # the next resume needs no flag
    assert TARGET_KEY not in (root / "config.yaml").read_text()


def test_a_redacted_base_url_or_body_secret_is_refused_not_sent(tmp_path):
    cfg = parse_config({"target": {"model": "m", "base_url": "https://u:pw-123456789@h/v1?key=k"
                                   "-987654321&model=x", "extra_body": {
                                       "headers": {"Authorization": "Bearer sk-hdr-11111111"},
                                       "max_tokens": 5}}, "scorer": "exact",
                        "out": str(tmp_path / "run")})
    text = dump_config(cfg)
    for secret in ("pw-123456789", "k-987654321", "sk-hdr-11111111"):
        assert secret not in text
    saved = yaml.safe_load(text)
    assert saved["target"]["base_url"] == "https://***redacted***@h/v1?key=***redacted***&model=x"
    assert saved["target"]["extra_body"]["max_tokens"] == 5  # a count, not a credential
    back = parse_config(saved)
    with pytest.raises(ConfigError) as info:
        Trainer(back, optimizer=FakeModel(Script().respond)).fit(make_tasks(8), START)
    msg = str(info.value)
    assert "target.base_url" in msg and "target.extra_body.headers.Authorization" in msg
    assert "rerun `skilltrain train`" in msg and "\n" not in msg
    assert not (tmp_path / "run").exists()


# -- 2. train --out EXISTING ---------------------------------------------------------------------

def fake_config(tmp: Path, **train: object) -> dict:
    """A run config for in-process fake models (given to the Trainer, so nothing is opened)."""
    data = tmp / "tasks.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in make_tasks(24)))
    (tmp / "SKILL.md").write_text(START)
    return {"out": str(tmp / "run"), "scorer": "exact", "gate": {"rule": "strict"},
            "data": {"path": str(data)}, "skill": str(tmp / "SKILL.md"),
            "target": {"model": "fake"}, "optimizer": {"model": "fake"},
            "train": {**TRAIN, "max_steps": 1, **train}}


def fit_fake(config: dict, callbacks=()) -> Trainer:
    model = FakeModel(Script(analyst_plan=["auto"]).respond)
    return Trainer(config, target=model, optimizer=model, callbacks=callbacks).fit()


def test_train_into_an_existing_run_refuses_settings_that_change_results(tmp_path):
    fit_fake(fake_config(tmp_path))
    root = tmp_path / "run"
    before = snapshot(root)
    with pytest.raises(ConfigError) as info:
        fit_fake(fake_config(tmp_path, lr=1, batch_size=6))
    msg = str(info.value)
    assert "train.batch_size" in msg and "train.lr" in msg and "train.epochs" not in msg
    assert "skilltrain resume" in msg and "new --out" in msg
    assert snapshot(root) == before

    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(fake_config(tmp_path)))
    proc = cli(["train", "--config", str(cfg_path), "--out", str(root), "--epochs", "3",
                "--quiet"])
    assert proc.exit_code == 2
    assert "train.epochs" in proc.stderr and "\n" not in proc.stderr.strip()
    assert snapshot(root) == before


def test_resume_may_change_when_to_stop_and_config_yaml_says_so(tmp_path):
    fit_fake(fake_config(tmp_path))
    events: list[dict] = []
    fit_fake({**fake_config(tmp_path), "budget": {"max_calls": 5000}}, [events.append])
    saved = load_config(tmp_path / "run/config.yaml")
    assert saved.budget.max_calls == 5000
    warning = [e["message"] for e in events if e["event"] == "warning"]
    assert warning and "budget.max_calls" in warning[0]


# -- 3. usage after kills and lost caches -----------------------------------------------------

RUNNER = """
import os, sys
sys.path.insert(0, {tests!r})
from scripted import Script
from skilltrain import Trainer
from skilltrain.models.fake import FakeModel

kind, _, nth = os.environ.get("KILL_AT", "").partition(":")
seen = []
def kill(event):
    if event["event"] == kind:
        seen.append(1)
        if len(seen) == int(nth):
            os._exit(9)  # like kill -9: no cleanup, no checkpoint
model = FakeModel(Script(analyst_plan=["auto"]).respond)
Trainer({config!r}, target=model, optimizer=model, callbacks=[kill]).fit()
"""


def run_fake(tmp: Path, out: Path, kill_at: str = "") -> int:
    config = {**fake_config(tmp), "out": str(out), "train": {**TRAIN, "max_steps": 2}}
    script = tmp / "runner.py"
    script.write_text(RUNNER.format(tests=str(TESTS), config=config))
    env = {**os.environ, "KILL_AT": kill_at}
    return subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          timeout=120).returncode


def usage(root: Path) -> tuple[dict, dict]:
    summary = json.loads((root / "summary.json").read_text())
    billed = json.loads((root / "state.json").read_text())["meter"]["billed"]
    return summary["usage"], billed


def test_usage_is_exact_after_a_kill_before_the_first_checkpoint(tmp_path):
    assert run_fake(tmp_path, tmp_path / "reference") == 0
    killed = tmp_path / "killed"
    assert run_fake(tmp_path, killed, "progress:4") == 9
    assert not (killed / "state.json").exists()  # killed in the baseline evaluation
    assert run_fake(tmp_path, killed) == 0
    assert usage(killed) == usage(tmp_path / "reference")
    assert json.loads((killed / "summary.json").read_text())["usage_trusted"] is True


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_lost_ledger_is_flagged_and_never_counts_below_the_checkpoint(tmp_path, server,
                                                                        monkeypatch, damage):
    srv = server()
    cfg_path, root = killed_in_step_two(tmp_path, srv, monkeypatch)
    checkpoint = json.loads((root / "state.json").read_text())["meter"]["usage"]
    for p in root.glob("run.sqlite*"):
        p.unlink()
    if damage == "truncated":
        (root / "run.sqlite").write_bytes(b"")
    proc = cli(["train", "--config", str(cfg_path), "--quiet"])
    assert proc.exit_code == 0, proc.output
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "usage may be undercounted" in warnings[0]
    summary = json.loads((root / "summary.json").read_text())
    assert summary["usage_trusted"] is False and "run.sqlite" in summary["usage_warning"]
    for role in ("target", "optimizer"):
        at_checkpoint = sum(u["calls"] for r, _, u in checkpoint if r == role)
        assert summary["usage"][role]["calls"] >= at_checkpoint > 0


def test_an_unreadable_run_sqlite_is_a_one_line_error(tmp_path):
    fit_fake(fake_config(tmp_path))
    root = tmp_path / "run"
    for p in root.glob("run.sqlite-*"):
        p.unlink()
    (root / "run.sqlite").write_bytes(b"this is not a database at all" * 200)
    before = snapshot(root)
    with pytest.raises(ConfigError, match=r"run\.sqlite: .*move"):
        fit_fake(fake_config(tmp_path))
    assert snapshot(root) == before


# -- 4. a private folder with no secrets in it ------------------------------------------------

def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode)
            for p in [root, *root.rglob("*")] if p.exists()}


def test_every_file_is_0600_and_every_folder_0700_even_under_umask_0(tmp_path, server,
                                                                   monkeypatch):
    srv = server()
    cfg_path = write_config(tmp_path, srv)
    monkeypatch.setenv("OPT_KEY_VAR", OPT_KEY)
    root = tmp_path / "run"
    during: dict[str, int] = {}

    def look(event: dict) -> None:  # -wal and -shm exist only while the run is open
        if event["event"] == "step_end":
            during.update(modes(root))

    old = os.umask(0)
    try:
        Trainer(load_config(cfg_path), callbacks=[look]).fit()
    finally:
        os.umask(old)
    after = modes(root)
    assert "run.sqlite-wal" in during and "events.jsonl" in after and "steps" in after
    for name, mode in {**during, **after}.items():
        want = 0o700 if (root / name).is_dir() or name == "." else 0o600
        assert mode == want, f"{name}: {oct(mode)}"


def test_an_endpoint_echoing_the_key_leaves_no_trace_of_it(tmp_path, server):
    srv = server("--echo-auth-every", "4")
    cfg_path = write_config(tmp_path, srv, body_secret=True)
    proc = cli(["train", "--config", str(cfg_path)], OPT_KEY_VAR=OPT_KEY)
    assert proc.exit_code == 0, proc.output
    root = tmp_path / "run"
    files = snapshot(root)
    echoed = [name for name, data in files.items() if b"credentials: Bearer" in data]
    assert any("rollouts.jsonl" in name for name in echoed), echoed  # the errors were kept
    for secret in (TARGET_KEY, OPT_KEY, BODY_SECRET):
        for name, data in files.items():
            assert secret.encode() not in data, f"{secret[:12]}... in {name}"
        assert secret not in proc.output
    assert any(b"credentials: Bearer ***redacted***" in data for data in files.values())
