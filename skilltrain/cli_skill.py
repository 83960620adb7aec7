"""The `skilltrain lint` and `skilltrain init` commands: checking a skill, starting a project.

They live apart from cli.py, which holds the training commands, and cli.py adds them to its app
with `register`, so this module never imports cli.py (no cycle).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer

from skilltrain.lint import DEFAULT_MAX_FILE_TOKENS, DEFAULT_MAX_TOKENS

LINT_HELP = ("Check a skill file or package against the Agent Skills spec, one line per finding "
             "(FILE:LINE: RULE: message): front matter fields, a package's name equal to its "
             "folder, links to files inside the package, size budgets, protected-region "
             "markers. Exit 0 when clean (warnings allowed unless --strict), 1 on errors, 2 "
             "when PATH is not there.")
INIT_HELP = ("Write a small project that trains at once with the embedded models: tasks.jsonl "
             "(24 tasks), SKILL.md, a commented run.yaml and a README. Then: cd FOLDER && "
             "skilltrain train -c run.yaml. Existing files are never overwritten unless "
             "--force.")


def _bad_input(message: str) -> None:
    """One line on stderr and exit 2, as every command says bad input."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)


def lint(
    path: Path = typer.Argument(..., help="a skill file (Markdown) or a skill package folder"),
    as_json: bool = typer.Option(False, "--json", help="print the findings as JSON"),
    strict: bool = typer.Option(False, "--strict", help="warnings fail too"),
    max_tokens: int = typer.Option(DEFAULT_MAX_TOKENS, min=1, help="token budget of a "
                                   "package's text in total (4 characters a token)"),
    max_file_tokens: int = typer.Option(DEFAULT_MAX_FILE_TOKENS, min=1, help="token budget "
                                        "of each file"),
) -> None:
    """Check a skill against the Agent Skills spec (help: LINT_HELP)."""
    from skilltrain.lint import errors, lint_path

    try:
        findings = lint_path(path, max_file_tokens=max_file_tokens, max_tokens=max_tokens)
    except FileNotFoundError as exc:
        _bad_input(str(exc))
    n_errors = len(errors(findings))
    n_warnings = len(findings) - n_errors
    if as_json:
        typer.echo(json.dumps({"path": str(path), "errors": n_errors, "warnings": n_warnings,
                               "findings": [f.to_json() for f in findings]}, indent=2))
    else:
        for finding in findings:
            typer.echo(str(finding))
        typer.echo(f"{path}: {n_errors} error(s), {n_warnings} warning(s)", err=True)
    if n_errors or (strict and n_warnings):
        raise typer.Exit(1)


def init(
    folder: Path = typer.Argument(Path("."), help="where to write the project (made if "
                                  "missing)"),
    force: bool = typer.Option(False, "--force", help="replace the project's files if they "
                               "exist"),
) -> None:
    """Write a starting project (help: INIT_HELP)."""
    from skilltrain.scaffold import ScaffoldError, tasks, write_project

    try:
        written = write_project(folder, force)
    except ScaffoldError as exc:
        _bad_input(str(exc))
    typer.echo(f"wrote {', '.join(map(str, written))} ({len(tasks())} tasks)")
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(folder))} && "
    typer.echo(f"next: {go}skilltrain train -c run.yaml")


def register(app: typer.Typer) -> None:
    """Add `lint` and `init` to the `skilltrain` command."""
    app.command("lint", help=LINT_HELP, short_help="Check a skill file or package against "
                "the Agent Skills spec; exit 1 on errors.")(lint)
    app.command("init", help=INIT_HELP, short_help="Write a small project that trains at once "
                "with the embedded models.")(init)
