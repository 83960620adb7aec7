"""Opening a run: where tasks, skill and scorer come from, the run folder, the models and
servers, and the baseline evaluation, so that run.py holds only what a running run knows.

An existing run folder is resumed only under the settings it was started with (settings that
only say how to reach a model or when to stop may change, and config.yaml is updated to say so),
and only with real credentials: config.yaml keeps secrets redacted, so a resume that cannot get
them back fails before any model call instead of sending the marker.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from skilltrain.config import (
    ROLES,
    ConfigError,
    TrainConfig,
    dump_config,
    load_config,
)
from skilltrain.data import Splits, Task, load_tasks, split_tasks, tasks_from_objects
from skilltrain.estimate import estimate
from skilltrain.evaluation import Evaluator
from skilltrain.gate import DEFAULT_GATE, make_gate
from skilltrain.harness import make_harness
from skilltrain.judge import build_scorer, judge_section
from skilltrain.models.base import ChatModel, Completion, ModelError
from skilltrain.models.cache import ResponseCache
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.meter import Meter
from skilltrain.optim.memory import RejectedBuffer
from skilltrain.package import SkillPackage, load_skill
from skilltrain.redaction import missing_secrets, secret_values
from skilltrain.run import RunContext
from skilltrain.run_state import RunState
from skilltrain.skill import Skill, SkillError
from skilltrain.store import CONFIG_FILE, STATE_FILE, RunStore, Scrubber


@dataclass
class RunParts:
    """What the caller hands a run instead of configuring it: models, scorer, harness, gate.
    None means "build it from the config"."""

    target: Any = None
    optimizer: Any = None
    judge: Any = None  # the judge scorer's model (a ChatModel), when the scorer is a judge
    scorer: Any = None
    harness: Any = None
    gate: Any = None


def resolve_inputs(cfg: TrainConfig, parts: RunParts, tasks: Iterable[Task | dict] | None,
                   skill: Skill | str | None) -> tuple[Splits, Skill, Any]:
    """Where tasks, skill and scorer come from: arguments first, then a suite, then files."""
    suite = None
    if cfg.suite:
        from skilltrain.suites import get_suite

        suite = get_suite(cfg.suite)
    elif cfg.benchmark.name:
        suite = benchmark_suite(cfg)
    fields = cfg.data.fields
    if tasks is not None:
        splits = split_tasks(tasks_from_objects(tasks, fields), cfg.data.split, cfg.data.seed)
    elif cfg.data.path:
        splits = split_tasks(load_tasks(cfg.data.path, fields), cfg.data.split, cfg.data.seed)
    elif cfg.data.train:
        splits = Splits(load_tasks(cfg.data.train, fields), load_tasks(cfg.data.val, fields),
                        load_tasks(cfg.data.test, fields) if cfg.data.test else [])
    elif suite is not None:
        splits = suite.splits(cfg.data.seed)
    else:
        raise ConfigError("data: no tasks; give data.path (or --data), data.train/val, "
                          "or a suite")
    if cfg.data.limit:
        lim = cfg.data.limit
        splits = Splits(splits.train[:lim], splits.val[:lim], splits.test[:lim])
    if isinstance(skill, SkillPackage):  # the config's budgets and switches, as recorded
        start = dataclasses.replace(skill, limits=cfg.package)
    elif isinstance(skill, Skill):
        start = skill
    elif isinstance(skill, str):
        start = load_skill(skill, cfg.package) if Path(skill).is_file() or Path(skill).is_dir() \
            else Skill(skill)
    elif cfg.skill:
        start = load_skill(cfg.skill, cfg.package)
    elif suite is not None:
        start = Skill(suite.skill)
    else:
        start = Skill("")
    try:
        start.validate()
    except SkillError as exc:
        raise ConfigError(f"skill: {exc}") from None
    if suite is not None and suite.harness != "chat" and cfg.harness == "chat" \
            and parts.harness is None:
        raise ConfigError(f"suite {suite.name!r} needs the {suite.harness} harness; "
                          f"set harness: {suite.harness} (or --harness {suite.harness})")
    scorer_spec = parts.scorer or cfg.scorer or (suite.scorer if suite else None)
    if scorer_spec is None:
        raise ConfigError("scorer: not set; give a scorer name (e.g. exact, numeric) or "
                          "'module:function'")
    scorer = build_scorer(scorer_spec)
    if hasattr(scorer, "check_tasks"):  # a judge: every task has a rubric, before any call
        scorer.check_tasks(splits.all())
    return splits, start, scorer


def benchmark_suite(cfg: TrainConfig) -> Any:
    """The configured paper benchmark over its data folder, as a Suite (benchmarks/base.py)."""
    from skilltrain.benchmarks import get_benchmark

    bench = get_benchmark(cfg.benchmark.name)
    return bench.as_suite(bench.data_dir(cfg.benchmark.data_dir))


def with_benchmark_agent(cfg: TrainConfig) -> TrainConfig:
    """The config with the benchmark's own agent-harness settings (Benchmark.agent) in the
    `agent:` keys the user did not set, in the file, by a flag or by --set (pydantic's
    `model_fields_set`, kept through merge_overrides); unchanged for other harnesses. Applied
    before config.yaml is written, so the run folder records what the harness used and a
    resume reads it back as set."""
    if not cfg.benchmark.name or cfg.harness != "agent":
        return cfg
    from skilltrain.benchmarks import get_benchmark

    given = cfg.agent.model_fields_set
    fill = {k: v for k, v in get_benchmark(cfg.benchmark.name).agent.items() if k not in given}
    if not fill:
        return cfg
    agent = type(cfg.agent).model_validate({**cfg.agent.model_dump(exclude_unset=True), **fill})
    return cfg.model_copy(update={"agent": agent})


def build_harness(cfg: TrainConfig) -> Any:
    """The configured harness; unusable options become a ConfigError naming the section."""
    cfg = with_benchmark_agent(cfg)
    environment = cfg.environment
    if cfg.harness == "environment" and not environment.env and cfg.benchmark.name:
        from skilltrain.benchmarks import get_benchmark  # a benchmark brings its environment

        bench_env = get_benchmark(cfg.benchmark.name).environment
        environment = environment.model_copy(update={"env": bench_env})
    try:
        return make_harness(cfg.harness, max_tokens=cfg.target.max_tokens,
                            target_model=cfg.target.model, agent=cfg.agent,
                            command=cfg.command, environment=environment)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"{cfg.harness}: {exc}") from None


def default_out(cfg: TrainConfig) -> Path:
    name = cfg.suite or cfg.benchmark.name or "run"
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


# Settings that say how to reach a model, what it costs or when to stop, not what is computed:
# a resume may change these (config.yaml is rewritten); any other change is refused.
NEUTRAL = ("out", "cache", "budget", "prices", "executor", *(f"{r}.{k}" for r in ROLES for k in (
    "base_url", "api_key", "api_key_env", "timeout", "concurrency", "retries", "retry_backoff",
    "transport", "rpm", "tpm")))


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested mapping; an empty mapping is a value of its own."""
    if isinstance(node, dict) and node:
        return {k: v for key, value in node.items()
                for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def changed_settings(cfg: TrainConfig, root: Path) -> list[str]:
    """The settings in which `cfg` differs from the run already in `root` (none for a new
    folder). A difference that changes results raises: resuming under it would mix two runs
    while config.yaml named only one; what remains are NEUTRAL keys a resume may change."""
    if not (root / CONFIG_FILE).is_file():
        return []
    saved, now = _flat(load_config(root / CONFIG_FILE).redacted()), _flat(cfg.redacted())
    differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k, ...) != now.get(k, ...))
    neutral = [k for k in differ if any(k == p or k.startswith(p + ".") for p in NEUTRAL)]
    refused = [k for k in differ if k not in neutral]
    if refused:
        shown = ", ".join(refused[:6]) + (f" and {len(refused) - 6} more" if refused[6:] else "")
        raise ConfigError(
            f"{root}: an existing run whose config.yaml differs in {shown}, which change results; "
            f"run `skilltrain resume {root}` to continue it with its saved settings, or give a "
            "new --out to train with these")
    return neutral


def check_credentials(cfg: TrainConfig, roles: tuple[str, ...], root: Path) -> None:
    """Every credential the opened roles need is at hand, before anything is written or sent."""
    missing = missing_secrets(cfg, roles)
    if missing:
        who = " and ".join(dict.fromkeys(m.split(".")[0] for m in missing))
        how = ("resume with --api-key-env ROLE=VAR (VAR: an environment variable holding the "
               "key), set ROLE.api_key_env in config.yaml, or "
               if all(m.endswith(".api_key") for m in missing) else "")
        raise ConfigError(f"{', '.join(missing)}: {root}/config.yaml keeps only a redacted "
                          f"placeholder for the {who} credential{'s' * (len(missing) > 1)} "
                          f"(secrets are never saved in the run folder); {how}rerun "
                          f"`skilltrain train` with your original config and --out {root}")
    for role in roles:
        var = getattr(cfg, role).api_key_env
        if var and not os.environ.get(var):
            raise ConfigError(f"{role}.api_key_env: environment variable {var} is not set")


class ScrubbedModel:
    """A ChatModel whose error texts carry none of the run's secrets: endpoints echo keys back
    in error bodies, and those texts end in rollouts, analyst records, events and the console."""

    def __init__(self, model: ChatModel, scrub: Scrubber):
        self.inner, self.name, self._scrub = model, model.name, scrub

    async def complete(self, request: dict[str, Any]) -> Completion:
        try:
            return await self.inner.complete(request)
        except ModelError as exc:  # scrubbed in place: its type and attributes stay
            exc.message = self._scrub(exc.message)
            exc.args = tuple(self._scrub(a) if isinstance(a, str) else a for a in exc.args)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def open_run(cfg: TrainConfig, parts: RunParts, tasks: Iterable[Task | dict] | None,
                   skill: Skill | str | None, *, callbacks: Iterable[Callable[[dict], None]] = (),
                   replay: bool = False) -> AsyncIterator[RunContext]:
    """A run ready to train: its folder (new, or resumed under the same settings), models,
    evaluator, gate and state, with the baseline scored on a new run."""
    cfg = with_benchmark_agent(cfg)  # before config.yaml is compared and written
    root = Path(cfg.out) if cfg.out else default_out(cfg)
    changed = changed_settings(cfg, root)
    check_credentials(cfg, tuple(r for r in ROLES if getattr(parts, r) is None
                                 and getattr(cfg, r) is not None
                                 and not getattr(cfg, r).model.startswith("local:")), root)
    splits, start, scorer = resolve_inputs(cfg, parts, tasks, skill)
    fresh = not root.exists()
    store = RunStore(root, secret_values(cfg, os.environ))
    try:
        meter = Meter(prices={**cfg.prices}, limits=cfg.budget,
                      ledger=store.db)
    except sqlite3.DatabaseError as exc:
        store.close()
        raise ConfigError(f"{store.db_path}: its call ledger is unreadable ({exc}); move the "
                          "file away to resume without its caches") from None
    state = store.load_state()
    if state is None or changed:
        store.write_text(CONFIG_FILE, dump_config(cfg))
    if state is None:
        store.save_skill(0, start)
    try:
        async with _run_context(cfg, parts, store, state, splits, start, scorer, meter,
                                list(callbacks), replay) as run:
            if state is not None and changed:
                run.emit("warning", message=f"resuming with changed {', '.join(changed)} "
                         "(settings that do not change results; config.yaml updated)")
            yield run
    except BaseException:
        if fresh and state is None and not store.path(STATE_FILE).exists():
            shutil.rmtree(root, ignore_errors=True)  # failed before the first checkpoint
        raise


@asynccontextmanager
async def _run_context(cfg: TrainConfig, parts: RunParts, store: RunStore, state: dict | None,
                       splits: Splits, start: Skill, scorer: Any, meter: Meter,
                       callbacks: list[Callable[[dict], None]], replay: bool
                       ) -> AsyncIterator[RunContext]:
    root = store.root
    async with AsyncExitStack() as stack:
        servers: dict[str, object] = {}
        cache = ResponseCache(cfg.cache or store.db_path)
        stack.callback(cache.close)
        stack.callback(store.close)

        async def client(role: str, given: Any) -> RoleClient:
            mcfg = judge_section(cfg.judge, cfg.optimizer, scorer) if role == "judge" \
                else getattr(cfg, role)
            if given is None:
                from skilltrain.models.registry import open_model

                given = await open_model(mcfg, stack, role, servers)
            settings = CallSettings.for_role(mcfg, role)
            if store.scrub:
                given = ScrubbedModel(given, store.scrub)
            return RoleClient(given, role, meter, cache=cache, settings=settings,
                              replay=replay)

        harness = parts.harness or build_harness(cfg)  # before the models: fail fast
        target = await client("target", parts.target)
        executor = None
        if cfg.executor.kind == "ray":  # rollouts on a cluster; the caches stay here
            from skilltrain.ray_executor import open_ray_executor

            executor = await stack.enter_async_context(open_ray_executor(
                cfg.executor, harness, target, target_cfg=cfg.target, given=parts.target))
        optimizer = await client("optimizer", parts.optimizer)
        judge = None
        if getattr(scorer, "needs_client", False) and getattr(scorer, "client", None) is None:
            same = cfg.judge is None and not getattr(scorer, "model", None)  # the optimizer's
            judge = await client("judge", parts.judge if parts.judge is not None
                                 else parts.optimizer if same else None)
            scorer = scorer.with_client(judge)
        evaluator = Evaluator(harness, target, scorer, store.scores, splits.all(),
                              metric=cfg.gate.metric, soft_weight=cfg.gate.soft_weight,
                              executor=executor)
        rule = DEFAULT_GATE if cfg.gate.rule == "default" else cfg.gate.rule
        gate = parts.gate or make_gate(rule, **cfg.gate.options)
        val_ids = sorted(t.id for t in splits.val)
        random.Random(f"val:{cfg.seed}").shuffle(val_ids)
        run = RunContext(store=store, splits=splits, evaluator=evaluator, target=target,
                         optimizer=optimizer, meter=meter, gate=gate, val_ids=val_ids,
                         state=RunState.new(start,
                                            RejectedBuffer(capacity=cfg.train.rejected_buffer),
                                            list(cfg.train.edit_ops)),
                         callbacks=callbacks, adapt_enabled=cfg.train.adapt)
        for role_client in (target, optimizer, *([judge] if judge else [])):  # live progress
            if role_client.limiter is not None:
                role_client.limiter.on_change = partial(run.throttle, role_client.role)
        if state is not None:
            run.restore(state)
            run.emit("resume", step=run.state.global_step, epoch=run.state.epoch + 1)
            if meter.warning:
                run.emit("warning", message=meter.warning)
        else:
            run.emit("start", out=str(root), train=len(splits.train), val=len(splits.val),
                     test=len(splits.test), target=target.model.name,
                     optimizer=optimizer.model.name,
                     gate=rule if parts.gate is None else type(parts.gate).__name__)
            run.emit("estimate", **estimate(cfg, splits, start, meter))
            cuts = start.target_view().describe_cuts() if isinstance(start, SkillPackage) else ""
            if cuts and cfg.harness == "chat":  # what the target will not read, said up front
                run.emit("warning", message=f"package view over package.shown_chars: {cuts}")
            store.write_best(start)
            if judge is not None and scorer.calibration:  # user-labelled items, before the run
                calibration = await scorer.calibrate()
                run.emit("calibration", line=calibration.line(),
                         **dataclasses.asdict(calibration))
            evaluator.on_progress = run.tick
            baseline = await evaluator.mean(start, splits.val)  # cached for the gate
            run.emit("baseline", val=baseline["score"], n=baseline["n"])
            run.checkpoint()
        evaluator.on_progress = run.tick
        yield run
