"""The Benchmark record: a paper benchmark read from files the user brings.

A benchmark is a suite whose tasks come from a data folder instead of a generator: the
paper's split manifest (`split_manifest.json`, or `train/items.json`, `val/items.json`,
`test/items.json`) names the items of each split, by id or by path, and the payload (the
benchmark's own files, downloaded by the user from its home) holds them. Nothing is fetched at
run time, so a missing file is a one-line error naming the file, where to get it and where to
put it. `as_suite` turns a benchmark and a data folder into a Suite, so the trainer's suite
path (tasks, starting skill, scorer, harness) is reused unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from skilltrain.data import Splits, Task
from skilltrain.suites.base import Suite, SuiteError

SPLITS = ("train", "val", "test")
MANIFEST = "split_manifest.json"


class BenchmarkError(SuiteError):
    """An unknown benchmark, or a data folder that lacks or garbles what it needs."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    source: str  # where the user gets the payload
    payload: str  # what to put in the data folder, in words
    skill: str  # the starting skill, Markdown
    scorer: Any  # a scorer spec for make_scorer
    items: Callable[[Path], dict[str, Task]] = field(repr=False)  # data folder -> id -> task
    harness: str = "chat"
    paper: Mapping[str, Any] = field(default_factory=dict)  # dotted config keys -> values
    data_env: str | None = None  # an environment variable naming the data folder
    environment: str | None = None  # the environment class (module:Class) it is played with
    # Its own agent-harness settings (AgentConfig keys), used for keys the user left unset
    # when it runs on the agent harness (run_setup.with_benchmark_agent).
    agent: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a shared record: its settings stay read-only
        object.__setattr__(self, "paper", MappingProxyType(dict(self.paper)))
        object.__setattr__(self, "agent", MappingProxyType(dict(self.agent)))

    def data_dir(self, given: str | None) -> str:
        """The data folder: the one given, else the benchmark's environment variable."""
        folder = given or (os.environ.get(self.data_env) if self.data_env else None)
        if not folder:
            also = f" or ${self.data_env}" if self.data_env else ""
            raise BenchmarkError(f"benchmark {self.name}: no data folder; give --data-dir "
                                 f"(benchmark.data_dir){also}, the folder holding "
                                 f"{self.payload} from {self.source}")
        return folder

    def missing(self, path: Path) -> BenchmarkError:
        """The one-line error for an absent payload file."""
        return BenchmarkError(f"benchmark {self.name}: {path} not found; get {self.payload} "
                              f"from {self.source} and put it in {path.parent}")

    def load(self, data_dir: str | Path) -> Splits:
        """The paper's splits: the manifest's ids, looked up in the payload."""
        root = Path(data_dir)
        if not root.is_dir():
            raise BenchmarkError(f"benchmark {self.name}: data folder {root} not found; get "
                                 f"{self.payload} from {self.source} and put it there")
        manifest = read_manifest(self, root)
        found = self.items(root)
        splits = {}
        for split in SPLITS:
            tasks = []
            for entry in manifest.get(split, []):
                key = entry if entry in found else Path(entry).stem
                if key not in found:
                    raise BenchmarkError(f"benchmark {self.name}: {split} item {entry!r} of the "
                                         f"manifest is not in the payload under {root}")
                tasks.append(found[key])
            splits[split] = tasks
        if not splits["train"] or not splits["val"]:
            raise BenchmarkError(f"benchmark {self.name}: the manifest under {root} names no "
                                 "train or no val items")
        return Splits(splits["train"], splits["val"], splits["test"])

    def as_suite(self, data_dir: str | Path) -> Suite:
        """This benchmark over one data folder, as a Suite (the seed does not move the paper's
        fixed splits)."""
        splits = self.load(data_dir)
        return Suite(name=self.name, description=self.description, skill=self.skill,
                     scorer=self.scorer, build=lambda _seed: splits, harness=self.harness)


def _entries(value: Any, where: Path) -> list[str]:
    if not isinstance(value, list):
        raise BenchmarkError(f"{where}: expected a list of item ids or paths")
    out = []
    for item in value:
        if isinstance(item, Mapping) and "id" in item:
            item = item["id"]
        if not isinstance(item, (str, int)):
            raise BenchmarkError(f"{where}: expected item ids or paths, got {item!r}")
        out.append(str(item))
    return out


def read_json(path: Path) -> Any:
    """A JSON file, or a one-line BenchmarkError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"{path}: not valid JSON ({exc})") from None


def read_manifest(bench: Benchmark, root: Path) -> dict[str, list[str]]:
    """split -> entries, from split_manifest.json, else from {train,val,test}/items.json."""
    path = root / MANIFEST
    if path.is_file():
        data = read_json(path)
        if not isinstance(data, Mapping):
            raise BenchmarkError(f"{path}: expected an object with train, val and test lists")
        return {s: _entries(data.get(s, []), path) for s in SPLITS}
    per_split = {s: root / s / "items.json" for s in SPLITS}
    if not any(p.is_file() for p in per_split.values()):
        raise BenchmarkError(f"benchmark {bench.name}: no split manifest in {root}; expected "
                             f"{path} or {root}/{{train,val,test}}/items.json (the paper's "
                             f"manifest, next to {bench.payload} from {bench.source})")
    return {s: _entries(read_json(p), p) if p.is_file() else [] for s, p in per_split.items()}


def require(bench: Benchmark, path: Path) -> Path:
    """`path` if it exists, else the missing-payload error."""
    if not path.exists():
        raise bench.missing(path)
    return path
