"""Checking a training run's inputs before it writes a file or calls a model.

Opening a run creates its folder, writes the config and the first skill, and only then builds
the gate, the harness and the models; a bad input found there left a half-made run folder, and
a scorer that raises was found only after a batch of paid rollouts. `check_run` reads and
checks everything the run will read, without writing anything, so the CLI fails on bad input
with one line and an untouched disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from skilltrain.config import ConfigError, TrainConfig
from skilltrain.lint import errors, lint_path, lint_text
from skilltrain.run_files import check_resumable, check_sqlite
from skilltrain.scoring import check_scorer
from skilltrain.skill import SkillError
from skilltrain.store import DATABASE_FILE, STATE_FILE


def check_run(cfg: TrainConfig, replay: bool = False) -> None:
    """Raise the one-line error a bad input would cause later: tasks, skill, scorer (tried on
    one task with its own reference as the answer), harness, the run folder a resume reads, and
    the response cache (which `--replay` needs to exist)."""
    from skilltrain.run_setup import RunParts, build_harness, resolve_inputs

    out = Path(cfg.out) if cfg.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"out {out}: exists and is not a folder")
    splits, start, scorer = resolve_inputs(cfg, RunParts(), None, None)
    check_start_skill(cfg, start.text)
    check_scorer(scorer, splits.train[0])
    build_harness(cfg)
    if out is not None and out.is_dir():
        check_resumable(out)
    cache = Path(cfg.cache) if cfg.cache else (out / DATABASE_FILE if out else None)
    if replay and (cache is None or not cache.is_file()):
        where = f"cache {cache}" if cache else "--replay"
        raise ConfigError(f"{where}: no such file; --replay serves every model call from an "
                          "existing response cache (give --cache FILE, e.g. a run's run.sqlite)")
    if cache is not None:
        check_sqlite(cache, ("responses",) if replay else ())


def check_start_skill(cfg: TrainConfig, text: str) -> None:
    """Refuse a starting skill that `skilltrain lint` finds errors in, naming the first one's
    file and line. Size budgets are left to the run's own settings, and a plain Markdown file
    without front matter only gets warnings (lint.py says why), so every skill that trained
    before still does."""
    if cfg.skill:
        findings = lint_path(cfg.skill, max_file_tokens=None, max_tokens=None)
    elif text.strip():  # a suite's skill: no folder, so no links to check
        findings = lint_text(text, f"suite {cfg.suite} skill", max_file_tokens=None)
    else:
        return
    bad = errors(findings)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        hint = f"; `skilltrain lint {cfg.skill}` lists them all" if cfg.skill else ""
        raise SkillError(f"{bad[0]}{more}{hint}")


def is_empty_folder(path: Path | None) -> bool:
    return path is not None and path.is_dir() and not any(path.iterdir())


def empty_again(path: Path) -> None:
    """After a run failed before its first checkpoint, take out what it wrote into a folder
    that was empty before: a failed start must leave nothing behind, even in a folder the user
    made for it (a checkpointed run stays, since it can be resumed)."""
    if (path / STATE_FILE).exists():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
