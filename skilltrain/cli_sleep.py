"""`skilltrain sleep ...`: learning from the sessions on disk. Kept out of cli.py (which adds
it with one line) so the command imports nothing of the training path."""

from __future__ import annotations

from pathlib import Path

import typer

from skilltrain.cli_errors import fail

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learn from the agent sessions already on disk.")

HARVEST_HELP = (
    "Read Claude Code, Codex CLI and generic JSONL sessions and write one redacted digest per "
    "session into --out (0600 files; a second harvest adds nothing new).\n\n"
    "Dropped, and counted by reason: headless runs (claude -p, SDKs, codex exec), sub-agent "
    "sessions, sessions skilltrain itself started (its scratch folders skilltrain-ws-* and "
    "skilltrain-cli-*), sessions with no user turn. Keys, tokens, passwords and private keys "
    "are replaced by ***redacted*** before anything is written.\n\n"
    'Generic JSONL, one object per line: {"session": "id", "role": "user|assistant|tool_call|'
    'tool_result", "text": "...", "time": "2026-01-02T03:04:05Z", "cwd": "/path"} (time and '
    "cwd optional).")


@app.command("harvest", help=HARVEST_HELP)
def harvest_command(
    claude_dir: Path = typer.Option(None, "--claude-dir", help="Claude Code projects folder "
                                    "(default: $CLAUDE_CONFIG_DIR/projects, else "
                                    "~/.claude/projects)"),
    codex_dir: Path = typer.Option(None, "--codex-dir", help="Codex sessions folder (default: "
                                   "$CODEX_HOME/sessions, else ~/.codex/sessions)"),
    generic: list[Path] = typer.Option([], "--generic", metavar="FILE", help="a generic JSONL file "
                                       "(repeatable)"),
    out: Path = typer.Option(None, "--out", help="digest folder (default: "
                             "~/.skilltrain/sleep/digests)"),
    turn_chars: int = typer.Option(2000, "--turn-chars", min=100, help="characters kept per "
                                   "turn (cut in the middle)"),
    total_chars: int = typer.Option(60000, "--total-chars", min=1000, help="characters kept "
                                    "per session"),
) -> None:
    """Harvest sessions into digests (help: HARVEST_HELP)."""
    from skilltrain.sleep.digest import Budget
    from skilltrain.sleep.harvest import default_out, harvest
    from skilltrain.sleep.transcripts import TranscriptError

    target = out or default_out()
    explicit = [n for n, v in (("claude-dir", claude_dir), ("codex-dir", codex_dir)) if v]
    try:
        result = harvest(target, claude_dir=claude_dir, codex_dir=codex_dir, generic=generic,
                         budget=Budget(turn_chars, total_chars), explicit=explicit)
    except (TranscriptError, OSError) as exc:
        fail(exc)
    for folder in result.missing:
        typer.echo(f"note: {folder} not found, skipped", err=True)
    typer.echo(result.summary(target))


def register(root: typer.Typer) -> None:
    """Add `sleep` to the `skilltrain` command."""
    root.add_typer(app, name="sleep")
