"""`skilltrain sleep harvest` on synthetic sessions written by us in the shapes Claude Code
2.1.197 and Codex 0.171.0 record (field names as their session files carry them): what is kept,
what is dropped and why, that a planted secret reaches no written file, and idempotence."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from skilltrain.cli import app
from skilltrain.harness.sandbox import Sandbox
from skilltrain.redaction import REDACTED, scrub_text
from skilltrain.sleep.harvest import harvest
from skilltrain.sleep.transcripts import TranscriptError, own_folder

KEYS = ("sk-ant-api03-Zq8XwLk2Vb7Nm4Pr1Ts6Yu9Io0PaSdFgHjKl",
        "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "AKIAIOSFODNN7EXAMPLE", "hunter2hunter2", "MIIEowIBAAKCAQEAplantedkeybody")


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def claude_session(root: Path, sid: str, cwd: str = "/home/ada/proj", *, name: str = "",
                   entrypoint: str = "cli", sidechain: bool = False,
                   user_texts: tuple[str, ...] = ("Add a --verbose flag to the CLI",)) -> Path:
    """A Claude Code session file: user prompts, an assistant reply with a tool call, and the
    tool's result, each line with the envelope fields the CLI writes."""
    envelope = {"isSidechain": sidechain, "userType": "external", "cwd": cwd, "sessionId": sid,
                "version": "2.1.197", "gitBranch": "main", "entrypoint": entrypoint}
    records: list[dict[str, Any]] = [
        {**envelope, "type": "user", "isMeta": True, "uuid": "m0",
         "timestamp": "2026-11-30T09:59:59Z",
         "message": {"role": "user", "content": "<local-command-caveat>ignore</...>"}}]
    for n, text in enumerate(user_texts):
        records += [
            {**envelope, "type": "user", "uuid": f"u{n}", "timestamp": f"2026-11-30T10:0{n}:00Z",
             "message": {"role": "user", "content": text}},
            {**envelope, "type": "assistant", "uuid": f"a{n}",
             "timestamp": f"2026-11-30T10:0{n}:05Z",
             "message": {"id": f"msg_{n}", "role": "assistant", "model": "claude-x",
                         "content": [{"type": "text", "text": "Reading the parser first."},
                                     {"type": "tool_use", "id": f"t{n}", "name": "Bash",
                                      "input": {"command": "cat cli.py"}}],
                         "usage": {"input_tokens": 10, "output_tokens": 5}}},
            {**envelope, "type": "user", "uuid": f"r{n}", "timestamp": f"2026-11-30T10:0{n}:09Z",
             "message": {"role": "user", "content": [
                 {"type": "tool_result", "tool_use_id": f"t{n}", "content": "import typer"}]}}]
    return _jsonl(root / "-home-ada-proj" / (name or f"{sid}.jsonl"), records)


def codex_session(root: Path, sid: str, cwd: str = "/home/ada/proj", *, source: Any = "cli",
                  originator: str = "codex_cli_rs", provider: str = "openai",
                  text: str = "Fix the failing test in test_io.py") -> Path:
    """A Codex rollout: session_meta first, the injected instructions and environment context,
    then the user's prompt, a shell call, its output and the reply."""
    def item(payload: dict[str, Any], t: str) -> dict[str, Any]:
        return {"timestamp": f"2026-11-29T08:00:{t}Z", "type": "response_item",
                "payload": payload}
    records = [
        {"timestamp": "2026-11-29T08:00:00Z", "type": "session_meta",
         "payload": {"id": sid, "timestamp": "2026-11-29T08:00:00Z", "cwd": cwd,
                     "originator": originator, "cli_version": "0.171.0", "source": source,
                     "model_provider": provider}},
        item({"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<user_instructions>be terse</user_instructions>"}]},
            "01"),
        item({"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>cwd</environment_context>"}]},
            "02"),
        item({"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": text}]}, "03"),
        {"timestamp": "2026-11-29T08:00:03Z", "type": "event_msg",
         "payload": {"type": "user_message", "message": text}},
        item({"type": "function_call", "name": "shell", "call_id": "c1",
              "arguments": json.dumps({"command": ["pytest", "-q"]})}, "04"),
        item({"type": "function_call_output", "call_id": "c1", "output": "1 failed"}, "05"),
        item({"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "The fixture path was wrong; fixed."}]}, "06"),
    ]
    return _jsonl(root / "2026" / "11" / "29" / f"rollout-2026-11-29T08-00-00-{sid}.jsonl",
                  records)


@pytest.fixture
def homes(tmp_path: Path) -> tuple[Path, Path, Path]:
    return tmp_path / "claude", tmp_path / "codex", tmp_path / "out"


def _digests(out: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def test_interactive_sessions_become_digests_with_turns_span_and_counts(homes) -> None:
    claude, codex, out = homes
    claude_session(claude, "c-1", user_texts=("Add a --verbose flag", "No, put it on the "
                                              "subcommand", "Add a --verbose flag"))
    codex_session(codex, "x-1")
    result = harvest(out, claude_dir=claude, codex_dir=codex)
    assert (dict(result.read), dict(result.dropped)) == ({"claude-code": 1, "codex": 1}, {})
    found = _digests(out)
    assert sorted(found) == ["claude-code-c-1.json", "codex-x-1.json"]
    c = found["claude-code-c-1.json"]
    assert (c["cwd"], c["started"], c["ended"]) == ("/home/ada/proj", "2026-11-30T10:00:00Z",
                                                    "2026-11-30T10:02:09Z")
    assert [t["role"] for t in c["turns"][:4]] == ["user", "assistant", "tool_call",
                                                   "tool_result"]
    assert "local-command-caveat" not in json.dumps(c)  # isMeta lines are the CLI's
    assert c["counts"] == {"user_turns": 3, "assistant_turns": 3, "tool_calls": 3,
                                "corrections": 1, "retries": 1, "turns_cut": 0}
    x = found["codex-x-1.json"]
    assert [(t["role"], t["text"]) for t in x["turns"]] == [
        ("user", "Fix the failing test in test_io.py"),
        ("tool_call", json.dumps({"command": ["pytest", "-q"]})), ("tool_result", "1 failed"),
        ("assistant", "The fixture path was wrong; fixed.")]


def test_a_planted_secret_reaches_no_written_file(homes) -> None:
    claude, codex, out = homes
    long_tail = "x" * 5000  # the key sits where a clip would cut: redaction must come first
    claude_session(claude, "c-2", user_texts=(
        f"my key is {KEYS[0]} and {long_tail} export GITHUB_TOKEN={KEYS[1]}",
        f"aws {KEYS[2]} password={KEYS[3]} curl -H 'Authorization: Bearer abcdef123456789'"))
    codex_session(codex, "x-2", text=f"-----BEGIN RSA PRIVATE KEY-----\n{KEYS[4]}\n"
                                     f"-----END RSA PRIVATE KEY-----\nuse {KEYS[0]}")
    result = harvest(out, claude_dir=claude, codex_dir=codex)
    assert result.written["new"] == 2 and result.redacted >= 7
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for secret in (*KEYS, "abcdef123456789", KEYS[0][:20]):
        assert secret.encode() not in written
    assert written.count(REDACTED.encode()) >= 7
    for path in out.glob("*.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) & 0o077 == 0


def test_headless_subagent_own_and_empty_sessions_are_dropped_by_reason(homes) -> None:
    claude, codex, out = homes
    claude_session(claude, "keep-c")
    claude_session(claude, "side", sidechain=True)
    claude_session(claude, "agent", name="agent-3f2a.jsonl")
    claude_session(claude, "printed", entrypoint="sdk-cli")  # claude -p
    claude_session(claude, "sdk", entrypoint="sdk-py")
    claude_session(claude, "ours", cwd="/tmp/skilltrain-ws-k2j4_x9q")
    claude_session(claude, "blank", user_texts=())
    codex_session(codex, "keep-x")
    codex_session(codex, "exec", source="exec", originator="codex_exec")
    codex_session(codex, "exec-old", source="cli", originator="codex_exec")
    codex_session(codex, "sub", source={"subagent": {"thread_spawn": {"depth": 1}}})
    codex_session(codex, "ours-x", cwd="/var/tmp/skilltrain-cli-8d7a6b/.tmp")
    codex_session(codex, "ours-provider", provider="skilltrain")
    result = harvest(out, claude_dir=claude, codex_dir=codex)
    assert sum(result.read.values()) == 13
    assert dict(result.dropped) == {"subagent": 3, "headless": 4, "skilltrain": 3, "empty": 1}
    assert sorted(_digests(out)) == ["claude-code-keep-c.json", "codex-keep-x.json"]


def test_the_own_folder_rule_matches_the_folders_skilltrain_really_makes(monkeypatch) -> None:
    with Sandbox() as box:  # the command harness's workspace
        assert own_folder(str(box.workspace)) and own_folder(str(box.workspace / "sub"))
    import skilltrain.models.cli_model as cli_model

    seen: list[str] = []

    class Stop(Exception):
        pass

    def record(*_: Any, prefix: str = "", **__: Any) -> Any:
        with Sandbox(prefix=prefix) as box:
            seen.append(str(box.workspace))
        raise Stop

    monkeypatch.setattr(cli_model, "Sandbox", record)
    model = cli_model.CliModel(f'cmd:"{sys.executable} -c pass"')
    with pytest.raises(Stop):
        model._run(cli_model.flatten([{"role": "user", "content": "hi"}], None), None)
    assert seen and own_folder(seen[0])
    assert not own_folder("/home/ada/skilltrain") and not own_folder("/home/ada/skilltrain-app")


def test_a_second_harvest_adds_nothing_and_a_grown_session_is_rewritten(homes) -> None:
    claude, codex, out = homes
    path = claude_session(claude, "c-3")
    codex_session(codex, "x-3")
    harvest(out, claude_dir=claude, codex_dir=codex)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    again = harvest(out, claude_dir=claude, codex_dir=codex)
    assert dict(again.written) == {"unchanged": 2}
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    with path.open("a") as fh:
        fh.write(json.dumps({"type": "user", "sessionId": "c-3", "cwd": "/home/ada/proj",
                             "entrypoint": "cli", "timestamp": "2026-11-30T11:00:00Z",
                             "message": {"role": "user", "content": "thanks"}}) + "\n")
    grown = harvest(out, claude_dir=claude, codex_dir=codex)
    assert dict(grown.written) == {"updated": 1, "unchanged": 1}
    assert len(list(out.iterdir())) == 2
    assert _digests(out)["claude-code-c-3.json"]["turns"][-1]["text"] == "thanks"


def test_default_folders_follow_the_cli_home_variables(tmp_path: Path) -> None:
    claude_session(tmp_path / "cc" / "projects", "env-c")
    codex_session(tmp_path / "cx" / "sessions", "env-x")
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "cc"), "CODEX_HOME": str(tmp_path / "cx")}
    result = harvest(tmp_path / "out", environ=env)
    assert dict(result.read) == {"claude-code": 1, "codex": 1} and result.missing == []
    nothing = harvest(tmp_path / "out2", environ={"CLAUDE_CONFIG_DIR": str(tmp_path / "no"),
                                                  "CODEX_HOME": str(tmp_path / "no")})
    assert sum(nothing.read.values()) == 0 and len(nothing.missing) == 2
    with pytest.raises(TranscriptError, match="--codex-dir .*no such folder"):
        harvest(tmp_path / "out3", codex_dir=tmp_path / "missing", environ=env,
                explicit=["codex-dir"])
    assert not (tmp_path / "out3").exists()


def test_generic_jsonl_groups_by_session_and_a_bad_line_writes_nothing(tmp_path: Path) -> None:
    good = _jsonl(tmp_path / "g.jsonl", [
        {"session": "s1", "role": "user", "text": "Summarise notes.md", "time": "2026-01-01T01"},
        {"session": "s2", "role": "user", "text": "hello", "cwd": "/tmp/skilltrain-ws-abc"},
        {"session": "s1", "role": "assistant", "text": "Done.", "time": "2026-01-01T02"}])
    none = tmp_path / "none"
    result = harvest(tmp_path / "out", claude_dir=none, codex_dir=none, generic=[good])
    assert dict(result.read) == {"generic": 2} and dict(result.dropped) == {"skilltrain": 1}
    digest = _digests(tmp_path / "out")["generic-s1.json"]
    assert [t["text"] for t in digest["turns"]] == ["Summarise notes.md", "Done."]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"session": "s", "role": "user", "text": "ok"}) + "\n"
                   + json.dumps({"session": "s", "role": "robot", "text": "?"}) + "\n")
    with pytest.raises(TranscriptError, match=r"bad\.jsonl:2: expected"):
        harvest(tmp_path / "out4", claude_dir=none, codex_dir=none, generic=[good, bad])
    assert not (tmp_path / "out4").exists()


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["sleep", "harvest", *args])


def test_the_command_prints_its_counts_and_exits_2_on_bad_input(homes, monkeypatch,
                                                                 tmp_path: Path) -> None:
    claude, codex, out = homes
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    claude_session(claude, "k1")
    claude_session(claude, "p1", entrypoint="sdk-cli")
    codex_session(codex, "k2")
    codex_session(codex, "o1", cwd="/tmp/skilltrain-cli-zz11")
    args = ["--claude-dir", str(claude), "--codex-dir", str(codex), "--out", str(out)]
    first = _cli(*args)
    assert first.exit_code == 0, (first.stdout, first.stderr)
    assert first.stdout.strip() == (
        f"read 4 sessions (claude-code 2, codex 2); dropped 2 (headless 1, skilltrain 1); "
        f"wrote 2 digests (new 2) to {out}; redacted 0 secrets")
    second = _cli(*args)
    assert second.exit_code == 0 and "wrote 0 digests (unchanged 2)" in second.stdout
    default = _cli("--claude-dir", str(claude))  # codex and out default under HOME
    assert default.exit_code == 0 and "note: " in default.stderr
    assert len(list((tmp_path / "home" / ".skilltrain/sleep/digests").glob("*.json"))) == 1
    missing = _cli("--claude-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o2"))
    assert missing.exit_code == 2 and missing.stderr.startswith("error: --claude-dir")
    assert len(missing.stderr.splitlines()) == 1 and not (tmp_path / "o2").exists()


def test_scrub_text_keeps_names_and_counts_but_not_lookalikes() -> None:
    text, n = scrub_text("OPENAI_API_KEY=sk-proj-abcdefghijklmnop1234 max_tokens=100 "
                         "postgres://bob:pw12345@db/x the token: is fine")
    assert text == (f"OPENAI_API_KEY={REDACTED} max_tokens=100 postgres://bob:{REDACTED}@db/x "
                    "the token: is fine")
    assert n == 2
