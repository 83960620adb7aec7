"""Opening a run: where tasks, skill and scorer come from, the run folder, the models and
servers, and the baseline evaluation, so that run.py holds only what a running run knows.

An existing run folder is resumed only under the settings it was started with (settings that
only say how to reach a model or when to stop may change, and config.yaml is updated to say so),
and only with real credentials: config.yaml keeps secrets redacted, so a resume that cannot get
them back fails before any model call instead of sending the marker.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skilltrain.config import (
    ROLES,
    ConfigError,
    TrainConfig,
    dump_config,
    load_config,
)
from skilltrain.data import FieldMap, Splits, Task, load_tasks, split_tasks, tasks_from_objects
from skilltrain.estimate import estimate
from skilltrain.evaluation import Evaluator
from skilltrain.gate import DEFAULT_GATE, make_gate
from skilltrain.harness import make_harness
from skilltrain.models.base import ChatModel, Completion, ModelError
from skilltrain.models.cache import ResponseCache
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.meter import Limits, Meter
from skilltrain.optim.memory import RejectedBuffer
from skilltrain.redaction import missing_secrets, secret_values
from skilltrain.run import RunContext, Version
from skilltrain.scoring import make_scorer
from skilltrain.skill import Skill, SkillError
from skilltrain.store import RunStore, Scrubber

if TYPE_CHECKING:
    from skilltrain.trainer import Trainer


def resolve_inputs(trainer: Trainer, tasks: Iterable[Task | dict] | None,
                   skill: Skill | str | None) -> tuple[Splits, Skill, Any]:
    """Where tasks, skill and scorer come from: arguments first, then a suite, then files."""
    cfg = trainer.config
    suite = None
    if cfg.suite:
        from skilltrain.suites import get_suite

        suite = get_suite(cfg.suite)
    fields = FieldMap(**cfg.data.fields.model_dump())
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
    if isinstance(skill, Skill):
        start = skill
    elif isinstance(skill, str):
        start = Skill.from_file(skill) if Path(skill).is_file() else Skill(skill)
    elif cfg.skill:
        start = Skill.from_file(cfg.skill)
    elif suite is not None:
        start = Skill(suite.skill)
    else:
        start = Skill("")
    try:
        start.validate()
    except SkillError as exc:
        raise ConfigError(f"skill: {exc}") from None
    if suite is not None and suite.harness != "chat" and cfg.harness == "chat" \
            and trainer.harness is None:
        raise ConfigError(f"suite {suite.name!r} needs the {suite.harness} harness; "
                          f"set harness: {suite.harness} (or --harness {suite.harness})")
    scorer_spec = trainer.scorer or cfg.scorer or (suite.scorer if suite else None)
    if scorer_spec is None:
        raise ConfigError("scorer: not set; give a scorer name (e.g. exact, numeric) or "
                          "'module:function'")
    if isinstance(scorer_spec, dict):
        options = dict(scorer_spec)
        scorer = make_scorer(options.pop("name"), **options)
    else:
        scorer = make_scorer(scorer_spec)
    return splits, start, scorer


def build_harness(cfg: TrainConfig) -> Any:
    """The configured harness; unusable options become a ConfigError naming the section."""
    try:
        return make_harness(cfg.harness, max_tokens=cfg.target.max_tokens,
                            target_model=cfg.target.model, agent=cfg.agent.model_dump(),
                            command=cfg.command.model_dump())
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"{cfg.harness}: {exc}") from None


def default_out(trainer: Trainer) -> Path:
    name = trainer.config.suite or "run"
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


# Settings that say how to reach a model, what it costs or when to stop, not what is computed:
# a resume may change these (config.yaml is rewritten); any other change is refused.
NEUTRAL = ("out", "cache", "budget", "prices", *(f"{r}.{k}" for r in ROLES for k in (
    "base_url", "api_key", "api_key_env", "timeout", "concurrency", "retries", "retry_backoff")))


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
    if not (root / "config.yaml").is_file():
        return []
    saved, now = _flat(load_config(root / "config.yaml").redacted()), _flat(cfg.redacted())
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
async def open_run(trainer: Trainer, tasks: Iterable[Task | dict] | None,
                   skill: Skill | str | None) -> AsyncIterator[RunContext]:
    cfg = trainer.config
    root = Path(cfg.out) if cfg.out else default_out(trainer)
    changed = changed_settings(cfg, root)
    check_credentials(cfg, tuple(r for r in ROLES if getattr(trainer, r) is None
                                 and not getattr(cfg, r).model.startswith("local:")), root)
    splits, start, scorer = resolve_inputs(trainer, tasks, skill)
    fresh = not root.exists()
    store = RunStore(root, secret_values(cfg, os.environ))
    try:
        meter = Meter(prices={**cfg.prices}, limits=Limits(**cfg.budget.model_dump()),
                      ledger=store.db)
    except sqlite3.DatabaseError as exc:
        store.close()
        raise ConfigError(f"{store.db_path}: its call ledger is unreadable ({exc}); move the "
                          "file away to resume without its caches") from None
    state = store.load_state()
    if state is None or changed:
        store.write_text("config.yaml", dump_config(cfg))
    if state is None:
        store.save_skill(0, start)
    try:
        async with _run_context(trainer, store, state, splits, start, scorer, meter) as run:
            if state is not None and changed:
                run.emit("warning", message=f"resuming with changed {', '.join(changed)} "
                         "(settings that do not change results; config.yaml updated)")
            yield run
    except BaseException:
        if fresh and state is None and not store.path("state.json").exists():
            shutil.rmtree(root, ignore_errors=True)  # failed before the first checkpoint
        raise


@asynccontextmanager
async def _run_context(trainer: Trainer, store: RunStore, state: dict | None, splits: Splits,
                       start: Skill, scorer: Any, meter: Meter) -> AsyncIterator[RunContext]:
    cfg = trainer.config
    root = store.root
    async with AsyncExitStack() as stack:
        servers: dict[str, object] = {}
        cache = ResponseCache(cfg.cache or store.db_path)
        stack.callback(cache.close)
        stack.callback(store.close)

        async def client(role: str, given: Any) -> RoleClient:
            mcfg = getattr(cfg, role)
            if given is None:
                from skilltrain.models.registry import open_model

                given = await open_model(mcfg, stack, role, servers)
            settings = CallSettings(temperature=mcfg.temperature, max_tokens=mcfg.max_tokens,
                                    seed=mcfg.seed, retries=mcfg.retries,
                                    backoff_s=mcfg.retry_backoff)
            if store.scrub:
                given = ScrubbedModel(given, store.scrub)
            return RoleClient(given, role, meter, cache=cache, settings=settings,
                              replay=trainer.replay)

        harness = trainer.harness or build_harness(cfg)  # before the models: fail fast
        target = await client("target", trainer.target)
        optimizer = await client("optimizer", trainer.optimizer)
        evaluator = Evaluator(harness, target, scorer, store.scores, splits.all(),
                              metric=cfg.gate.metric, soft_weight=cfg.gate.soft_weight)
        rule = DEFAULT_GATE if cfg.gate.rule == "default" else cfg.gate.rule
        gate = make_gate(rule, **cfg.gate.options)
        val_ids = sorted(t.id for t in splits.val)
        random.Random(f"val:{cfg.seed}").shuffle(val_ids)
        initial = Version(0, start, 0)
        run = RunContext(trainer=trainer, store=store, splits=splits, evaluator=evaluator,
                         target=target, optimizer=optimizer, meter=meter, gate=gate,
                         val_ids=val_ids, initial=initial, incumbent=initial, best=initial,
                         rejected=RejectedBuffer(capacity=cfg.train.rejected_buffer),
                         epoch_start=initial,
                         versions=[{**initial.to_json(), "accepted": True}],
                         edit_ops=list(cfg.train.edit_ops), adapt_enabled=cfg.train.adapt)
        if state is not None:
            run.restore(state)
            run.emit("resume", step=run.global_step, epoch=run.epoch + 1)
            if meter.warning:
                run.emit("warning", message=meter.warning)
        else:
            run.emit("start", out=str(root), train=len(splits.train), val=len(splits.val),
                     test=len(splits.test), target=target.model.name,
                     optimizer=optimizer.model.name, gate=rule)
            run.emit("estimate", **estimate(cfg, splits, start, meter))
            store.write_text("best_skill.md", start.text)
            evaluator.on_progress = run.tick
            baseline = await evaluator.mean(start, splits.val)  # cached for the gate
            run.emit("baseline", val=baseline["score"], n=baseline["n"])
            run.checkpoint()
        evaluator.on_progress = run.tick
        yield run
