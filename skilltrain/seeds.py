"""Repeated runs: the same config trained with seeds seed, seed+1, ..., and what they agree on.

One run's test gain is one draw: batch order, validation order and the optimizer's samples all
follow the run's seed, and on a 30-item test split one item is 3 points. `train_seeds` trains
the same config N times in sequence, each into `OUT/seed-K/` (K the seed), and writes
`OUT/seeds.json`: a row per seed (val and test, initial and best; the test gain; steps
accepted; wall seconds; cost) and the mean test gain with its 95% Student-t interval over the
seeds. Only `seed` changes between runs (not `data.seed`: every seed trains and tests on the
same splits, so the gains are comparable); each run has its own budget.

An interrupted seeds run continues seed by seed, by running the same command again or
`skilltrain resume OUT`: a finished `seed-K` folder is read, not rerun; an unfinished one
resumes through the ordinary resume path (same settings, same caches). seeds.json is written
before each seed starts and after it ends, so it always names the plan.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from skilltrain.config import ConfigError, TrainConfig, load_config, merge_overrides, parse_config
from skilltrain.data import Task
from skilltrain.files import atomic_write
from skilltrain.run_files import COUNT, INT, list_of, obj, read_json
from skilltrain.run_reader import RunReader
from skilltrain.run_setup import changed_settings, default_out
from skilltrain.skill import Skill
from skilltrain.stats import t_interval
from skilltrain.store import CONFIG_FILE

SEEDS_FILE = "seeds.json"

RunOne = Callable[[TrainConfig], object]
"""Trains one seed's config to the end (the CLI's adds its progress lines and summary)."""


def seed_folder(root: Path, seed: int) -> Path:
    return root / f"seed-{seed}"


def seeds_shape() -> Any:
    return obj({"first_seed": INT, "n": COUNT, "rows": list_of(obj({"seed": INT}))},
               ("first_seed", "n"))


def is_seeds_folder(path: Path) -> bool:
    return (Path(path) / SEEDS_FILE).is_file()


def read_seeds(root: Path) -> dict | None:
    """seeds.json, checked; None when `root` holds none."""
    return read_json(Path(root) / SEEDS_FILE, seeds_shape())


def plan(config: TrainConfig, n: int) -> tuple[Path, list[TrainConfig]]:
    """The folder and the per-seed configs: `config` with seed and out changed, nothing else."""
    if n < 2:
        raise ConfigError(f"--seeds {n}: expected at least 2 (one run is plain `train`)")
    root = Path(config.out) if config.out else default_out(config)
    runs = [merge_overrides(config, {"seed": s, "out": str(seed_folder(root, s))}, "--seeds")
            for s in range(config.seed, config.seed + n)]
    return root, runs


def check_plan(root: Path, runs: list[TrainConfig]) -> None:
    """Before any seed trains: the folder is not a single run's, and every seed folder that
    exists was started with these settings (else the mismatch would surface seeds later)."""
    if RunReader(root).is_run():
        raise ConfigError(f"out {root}: a single run's folder; --seeds trains into a folder of "
                          "its own (seed-K/ per seed)")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"out {root}: exists and is not a folder")
    for cfg in runs:
        changed_settings(cfg, Path(cfg.out))  # type: ignore[arg-type]
    read_seeds(root)  # a damaged seeds.json fails here, not after the first seed


def finished(folder: Path) -> bool:
    """The seed's run ended (trained out, or stopped by its budget): summary and final state."""
    reader = RunReader(folder)
    return reader.summary is not None and bool((reader.state or {}).get("done"))


def seed_row(seed: int, folder: Path) -> dict[str, Any]:
    """One seed's line of the summary, from its own run folder."""
    reader = RunReader(folder)
    s = reader.summary if finished(folder) else None
    row: dict[str, Any] = {"seed": seed, "folder": folder.name}
    if s is None:
        row["status"] = "started" if reader.is_run() else "pending"
        return row
    val, test = s.get("val") or {}, s.get("test") or {}
    gain = None if test.get("best") is None or test.get("initial") is None else \
        round(test["best"] - test["initial"], 4)
    row.update(status="stopped" if s.get("stopped") else "done",
               val_initial=val.get("initial"), val_best=val.get("best"),
               test_initial=test.get("initial"), test_best=test.get("best"), test_gain=gain,
               accepted=(s.get("steps") or {}).get("accepted"),
               rejected=(s.get("steps") or {}).get("rejected"),
               wall_s=s.get("wall_s"), cost_usd=s.get("cost_usd"), stopped=s.get("stopped"))
    return row


def _gain(rows: list[dict], key: str) -> dict[str, Any]:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    ci = t_interval(values)
    return {"mean": round(statistics.fmean(values), 4) if values else None,
            "ci95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
            "n": len(values)}


def summarize(first: int, n: int, rows: list[dict]) -> dict[str, Any]:
    """seeds.json's content: the plan, the rows, the mean test gain and its interval."""
    for r in rows:
        if isinstance(r.get("val_best"), (int, float)) and \
                isinstance(r.get("val_initial"), (int, float)):
            r["val_gain"] = round(r["val_best"] - r["val_initial"], 4)
    done = [r for r in rows if r.get("status") in ("done", "stopped")]
    return {"first_seed": first, "n": n, "seeds": [first + k for k in range(n)],
            "status": "done" if len(done) == n else "incomplete", "rows": rows,
            "test_gain": _gain(done, "test_gain"), "val_gain": _gain(done, "val_gain"),
            "wall_s": round(sum(r.get("wall_s") or 0 for r in done), 1),
            "cost_usd": round(sum(r.get("cost_usd") or 0 for r in done), 6)}


def write_seeds(root: Path, first: int, n: int) -> dict[str, Any]:
    """Re-read every seed folder and write seeds.json; return what was written."""
    rows = [seed_row(first + k, seed_folder(root, first + k)) for k in range(n)]
    data = summarize(first, n, rows)
    atomic_write(root / SEEDS_FILE, json.dumps(data, indent=2) + "\n")
    return data


def train_seeds(config: TrainConfig | dict | None, n: int,
                tasks: Iterable[Task | dict] | None = None, skill: Skill | str | None = None, *,
                run_one: RunOne | None = None,
                on_seed: Callable[[int, int, Path, bool], None] | None = None,
                **trainer_options: Any) -> dict[str, Any]:
    """Train `config` with `n` consecutive seeds (from `config.seed`); return seeds.json's
    content and `root`, the folder.

    `trainer_options` go to each `Trainer` (target=, optimizer=, scorer=, callbacks=, ...);
    `run_one` replaces the Trainer call (the CLI's prints progress). `on_seed(k, seed, folder,
    skipped)` is told before each seed, `skipped` when the seed had finished earlier. A seed
    that fails raises after seeds.json is brought up to date; a first seed that fails before
    it wrote anything leaves no seeds folder behind."""
    if not isinstance(config, TrainConfig):
        config = parse_config(config or {}, "train_seeds(config=...)")
    root, runs = plan(config, n)
    check_plan(root, runs)
    if run_one is None:
        from skilltrain.trainer import Trainer

        def run_one(cfg: TrainConfig) -> object:
            return Trainer(cfg, **trainer_options).fit(tasks, skill)

    fresh_root, fresh_file = not root.exists(), not is_seeds_folder(root)
    for k, cfg in enumerate(runs):
        folder = Path(cfg.out)  # type: ignore[arg-type]
        skipped = finished(folder)
        if on_seed is not None:
            on_seed(k, cfg.seed, folder, skipped)
        if skipped:
            continue
        write_seeds(root, config.seed, n)
        try:
            run_one(cfg)
        except BaseException:
            if fresh_file and not any(seed_folder(root, r.seed).exists() for r in runs):
                (root / SEEDS_FILE).unlink(missing_ok=True)  # bad input: nothing left behind
                if fresh_root:
                    shutil.rmtree(root, ignore_errors=True)
            else:
                write_seeds(root, config.seed, n)
            raise
    return {**write_seeds(root, config.seed, n), "root": str(root)}


def resume_plan(root: Path) -> tuple[TrainConfig, int]:
    """The config and count a seeds folder was started with, to continue it: the first seed's
    saved config.yaml with its own seed and folder put back to the plan's."""
    data = read_seeds(root)
    if data is None:
        raise ConfigError(f"{root}: not a seeds folder (no {SEEDS_FILE})")
    first, n = data["first_seed"], data["n"]
    saved = seed_folder(root, first) / CONFIG_FILE
    if not saved.is_file():
        raise ConfigError(f"{saved}: missing; rerun `skilltrain train ... --seeds {n} --out "
                          f"{root}` with the original settings")
    return merge_overrides(load_config(saved), {"seed": first, "out": str(root)},
                           str(saved)), n
