"""`skilltrain sleep ...`: learning from the sessions on disk. Kept out of cli.py (which adds
it with one line) so the command imports nothing of the training path."""

from __future__ import annotations

from pathlib import Path

import typer

from skilltrain.cli_errors import fail, set_overrides

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


MINE_HELP = (
    "Turn session digests into rule-scored tasks: a request the user corrected (\"no, ...\", "
    "\"try again\", \"use X instead\") becomes a task whose rules say what the correction "
    "insisted on or rejected, plus no_refusal. Requests accepted without feedback are skipped. "
    "Writes --out (all tasks) and train/val/test.jsonl beside it, split by a hash of the "
    "session id (a session's tasks never straddle splits). Heuristic only: no LLM miner.")


def _sleep_home(*parts: str) -> Path:
    return Path.home().joinpath(".skilltrain", "sleep", *parts)


@app.command("mine", help=MINE_HELP)
def mine_command(
    digests: Path = typer.Option(None, "--digests", help="digest folder (default: "
                                 "~/.skilltrain/sleep/digests)"),
    out: Path = typer.Option(None, "--out", help="tasks file (default: "
                             "~/.skilltrain/sleep/tasks/tasks.jsonl)"),
) -> None:
    """Mine digests into tasks (help: MINE_HELP)."""
    from skilltrain.sleep.mine import MineError, mine, write_tasks

    target = out or _sleep_home("tasks", "tasks.jsonl")
    try:
        result = mine(digests or _sleep_home("digests"))
        write_tasks(result, target)
    except (MineError, OSError) as exc:
        fail(exc)
    typer.echo(result.summary(target))


def _run_config(config: Path | None, overrides: dict) -> object:
    from skilltrain.config import TrainConfig, load_config, merge_overrides

    base = load_config(config) if config else TrainConfig()
    scorer = base.scorer
    name = scorer.get("name") if isinstance(scorer, dict) else scorer
    if name != "rules":  # mined tasks carry their rules; no other scorer can read them
        overrides["scorer"] = "rules"
    return merge_overrides(base, overrides, str(config) if config else "command line")


@app.command("run")
def run_command(
    skill: Path = typer.Option(..., "--skill", help="your skill: a SKILL.md (any Markdown "
                               "file) or a package folder; never written by this command"),
    tasks: Path = typer.Option(None, "--tasks", help="folder with train/val/test.jsonl "
                               "(default: ~/.skilltrain/sleep/tasks)"),
    target: str = typer.Option(None, "--target", help="target model"),
    optimizer: str = typer.Option(None, "--optimizer", help="optimizer model"),
    config: Path = typer.Option(None, "--config", "-c", help="YAML run config (its scorer "
                                "is replaced by rules unless it is a rules scorer)"),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE run setting, e.g. "
                                   "train.epochs=1 (repeatable)"),
    out: Path = typer.Option(None, "--out", help="run folder (default: "
                             "~/.skilltrain/sleep/runs/<name>-<time>)"),
    stage_dir: Path = typer.Option(None, "--stage", help="where to stage (default: "
                                   "~/.skilltrain/sleep/staged)"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """A gated training run on the mined tasks; stages the best skill, its diff and evidence
    when the gate accepted a step (nothing staged otherwise; exit 0 either way)."""
    import time

    from skilltrain.cli_errors import user_errors
    from skilltrain.console import Progress
    from skilltrain.preflight import check_run
    from skilltrain.run_reader import RunReader
    from skilltrain.sleep.staging import StageError, stage
    from skilltrain.trainer import Trainer

    folder = tasks or _sleep_home("tasks")
    files = {s: folder / f"{s}.jsonl" for s in ("train", "val", "test")}
    if not skill.exists():
        fail(StageError(f"--skill {skill}: no such file or folder"))
    if not files["train"].is_file() or not files["val"].is_file():
        fail(StageError(f"--tasks {folder}: expected train.jsonl and val.jsonl "
                        "(run `skilltrain sleep mine`)"))
    empty = [s for s in ("train", "val") if not files[s].read_text(encoding="utf-8").strip()]
    if empty:
        typer.echo(f"nothing to train on: no {' or '.join(empty)} tasks in {folder} "
                   "(more sessions with corrections are needed); nothing staged")
        return
    has_test = files["test"].is_file() and files["test"].read_text(encoding="utf-8").strip()
    name = skill.resolve().stem if skill.is_file() else skill.resolve().name
    overrides: dict = {"skill": str(skill), "data.train": str(files["train"]),
                       "data.val": str(files["val"]),
                       "data.test": str(files["test"]) if has_test else None,
                       "target.model": target, "optimizer.model": optimizer,
                       "out": str(out or _sleep_home("runs", f"{name}-"
                                                     f"{time.strftime('%Y%m%d-%H%M%S')}"))}
    try:
        overrides.update(set_overrides(sets))
        cfg = _run_config(config, overrides)
        check_run(cfg, False)
        trainer = Trainer(cfg, callbacks=[Progress(quiet=quiet)]).fit()
    except (*user_errors(), StageError) as exc:
        fail(exc)
    summary, run_dir = trainer.summary_, Path(trainer.run_dir_)
    accepted = summary["steps"].get("accepted", 0)
    val, test = summary["val"], summary["test"]
    line = (f"val {val['initial']:.3f} -> {val['best']:.3f}"
            + (f", test {test['initial']:.3f} -> {test['best']:.3f}"
               if test.get("best") is not None else ""))
    if not accepted:
        typer.echo(f"the gate accepted no step ({line}); nothing staged; run folder {run_dir}")
        return
    evidence = {"run_dir": str(run_dir), "val": val, "test": test,
                "steps": summary["steps"], "accepted": accepted,
                "target": cfg.target.model, "optimizer": cfg.optimizer.model}
    try:
        staged = stage(skill, RunReader(run_dir).best_skill_path, evidence, stage_dir)
    except (StageError, OSError) as exc:
        fail(exc)
    typer.echo(f"staged {staged} ({accepted} accepted steps; {line}); review "
               f"{staged / 'skill.diff'}, then `skilltrain sleep adopt {staged}`")


@app.command("adopt")
def adopt_command(
    staged: Path = typer.Argument(None, help="a staged folder (default: the newest)"),
    undo_: bool = typer.Option(False, "--undo", help="restore the backup the last adoption "
                               "made (of STAGED, or the newest adopted)"),
    root: Path = typer.Option(None, "--stage", help="staging folder (default: "
                              "~/.skilltrain/sleep/staged)"),
) -> None:
    """Write a staged skill over yours, keeping `<path>.bak-<time>` beside it; refuses when
    your skill changed since staging. `--undo` puts the backup back."""
    from skilltrain.sleep.staging import StageError, adopt, latest, undo

    try:
        folder = staged or latest(root, adopted=undo_)
        if undo_:
            path, backup = undo(folder)
            typer.echo(f"restored {path} from {backup}")
        else:
            path, backup = adopt(folder)
            typer.echo(f"adopted {folder} into {path}; backup {backup} "
                       "(`skilltrain sleep adopt --undo` restores it)")
    except (StageError, OSError) as exc:
        fail(exc)


@app.command("schedule")
def schedule_command(
    skill: str = typer.Option("PATH/TO/SKILL.md", "--skill", help="the skill the nightly "
                              "run trains"),
    hour: int = typer.Option(3, "--hour", min=0, max=23),
    minute: int = typer.Option(0, "--minute", min=0, max=59),
    extra: str = typer.Option("--quiet", "--run-args", help="more `sleep run` arguments "
                              "(e.g. --target ... --optimizer ...)"),
) -> None:
    """Print a cron line and a systemd user timer + service for a nightly
    `harvest && mine && run`. Prints only; installs nothing."""
    import shutil
    import sys

    from skilltrain.sleep.schedule import render

    exe = shutil.which("skilltrain") or f"{sys.executable} -m skilltrain.cli"
    typer.echo(render(exe, skill, extra, hour, minute), nl=False)


def register(root: typer.Typer) -> None:
    """Add `sleep` to the `skilltrain` command."""
    root.add_typer(app, name="sleep")
