"""The `skilltrain` command: train, eval, resume, suites, serve, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from skilltrain.cli_errors import fail as _fail
from skilltrain.cli_errors import set_overrides as _set_overrides
from skilltrain.cli_errors import user_errors as _user_errors
from skilltrain.cli_evidence import compare_command
from skilltrain.cli_skill import register as register_skill_commands
from skilltrain.cli_sleep import register as register_sleep_commands
from skilltrain.config import ConfigError, TrainConfig, load_config, merge_overrides
from skilltrain.console import LiveProgress, Progress, print_summary
from skilltrain.store import CONFIG_FILE

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train an agent's skill document with a frozen model.")
register_skill_commands(app)  # lint, init
register_sleep_commands(app)  # sleep harvest


def _flag(dotted: str) -> str:
    """The `train` flag that sets a dotted setting: most are named after its last part."""
    named = {"data.path": "data", "target.model": "target", "optimizer.model": "optimizer",
             "gate.rule": "gate", "agent.protocol": "agent-protocol",
             "executor.kind": "executor", "executor.address": "ray-address"}
    return "--" + named.get(dotted, dotted.rsplit(".", 1)[-1]).replace("_", "-")


def _build_config(config: Path | None, overrides: dict[str, Any],
                  from_set: frozenset[str] = frozenset()) -> TrainConfig:
    base = load_config(config) if config else TrainConfig()
    source = str(config) if config else "command line"
    try:
        return merge_overrides(base, overrides, source)
    except ConfigError as exc:  # a bad flag value is the flag's fault, not the file's
        if exc.key is None:
            raise
        detail = str(exc).removeprefix(f"{source}: {exc.key}: ")
        if any(exc.key == k or exc.key.startswith(k + ".") for k in from_set):
            raise ConfigError(f"--set {exc.key}: {detail}", exc.key) from None
        if overrides.get(exc.key) is None:
            raise
        raise ConfigError(f"{_flag(exc.key)}: {detail}", exc.key) from None


def _run_training(cfg: TrainConfig, quiet: bool, replay: bool = False) -> None:
    from skilltrain.models.openai_compat import deadline_line
    from skilltrain.preflight import check_run, empty_again, is_empty_folder
    from skilltrain.trainer import Trainer

    check_run(cfg, replay)  # bad input fails here: nothing written, no model called
    out = Path(cfg.out) if cfg.out else None
    was_empty = is_empty_folder(out)
    deadlines = deadline_line({"target": cfg.target.timeout, "optimizer": cfg.optimizer.timeout})

    def say_deadlines(event: dict) -> None:  # after the start line: bad input stays one line
        if event["event"] in ("start", "resume") and not replay:
            typer.echo(deadlines, err=True)

    def say_warnings(event: dict) -> None:  # inexact usage, settings changed on resume
        if event["event"] == "warning":
            typer.echo(f"warning: {event['message']}", err=True)

    live = None
    if not quiet and sys.stderr.isatty():
        live = LiveProgress()
    try:
        trainer = Trainer(cfg, callbacks=[live or Progress(quiet=quiet), say_deadlines,
                                          say_warnings], replay=replay)
        trainer.fit()
    except BaseException:
        if was_empty and out is not None:  # a folder the user made empty stays empty
            empty_again(out)
        raise
    finally:
        if live is not None:
            live.close()
    print_summary(trainer.summary_)


@app.command()
def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML run config"),
    data: str | None = typer.Option(None, help="tasks file (.jsonl, .json, .csv)"),
    suite: str | None = typer.Option(None, help="a built-in suite instead of --data"),
    benchmark: str | None = typer.Option(None, help="a paper benchmark (searchqa, livemath, "
                                         "...) read from --data-dir"),
    data_dir: str | None = typer.Option(None, help="--benchmark: the folder with its split "
                                        "manifest and payload"),
    preset: str | None = typer.Option(None, help="paper: the paper's training defaults for "
                                      "--benchmark (flags still override them)"),
    skill: str | None = typer.Option(None, help="starting skill: a Markdown file or a package "
                                     "folder (SKILL.md, references/, scripts/ ...)"),
    target: str | None = typer.Option(None, help="target model, e.g. openai:gpt-4o-mini"),
    optimizer: str | None = typer.Option(None, help="optimizer model"),
    scorer: str | None = typer.Option(None, help="exact, normalized, numeric, contains, "
                                         "regex, f1, choice, rules, module:function, or "
                                         "judge:MODEL (tasks' own `rubric` fields)"),
    epochs: int | None = typer.Option(None),
    batch_size: int | None = typer.Option(None),
    minibatch_size: int | None = typer.Option(None),
    lr: int | None = typer.Option(None, help="edits per step (max)"),
    lr_min: int | None = typer.Option(None),
    lr_schedule: str | None = typer.Option(None, help="constant, linear, cosine, autonomous"),
    gate: str | None = typer.Option(None, help="gate rule"),
    harness: str | None = typer.Option(None, help="chat, agent, command or environment "
                                         "(see the `environment:` config section)"),
    agent_protocol: str | None = typer.Option(
        None, help="agent harness: tools (native tool calls), text (code blocks), or auto"),
    max_turns: int | None = typer.Option(None, help="agent harness: model calls per task"),
    cmd: str | None = typer.Option(None, help="command harness: the agent command to run"),
    max_steps: int | None = typer.Option(None),
    proposals: int | None = typer.Option(
        None, help="sampled rule proposals per step (0: the paper's analysts only)"),
    screen: bool | None = typer.Option(None, "--screen/--no-screen", help="screen candidates "
                                       "on the train batch before the gate"),
    demonstrations: bool | None = typer.Option(
        None, "--demonstrations/--no-demonstrations", help="propose a worked-examples block"),
    answer_form: bool | None = typer.Option(
        None, "--answer-form/--no-answer-form", help="propose an answer-format instruction when "
        "answers hold the right answer in the wrong form"),
    attribution: bool | None = typer.Option(
        None, "--attribution/--no-attribution", help="at the end: which accepted edit fixed "
        "and broke which val/test items (costs evaluations; default on)"),
    prune: bool | None = typer.Option(
        None, "--prune/--no-prune", help="at the end: remove sections/paragraphs of the best "
        "skill the gate finds it no worse without (default off)"),
    max_calls: int | None = typer.Option(None),
    max_tokens: int | None = typer.Option(None),
    max_cost: float | None = typer.Option(None, help="USD"),
    seed: int | None = typer.Option(None),
    seeds: int | None = typer.Option(None, help="train N times, seeds SEED..SEED+N-1, into "
                                     "OUT/seed-K/; then the mean test gain and its interval"),
    out: str | None = typer.Option(None, help="run folder (an existing one resumes)"),
    cache: str | None = typer.Option(None, help="response cache file (e.g. another run's "
                                     "run.sqlite, to --replay it)"),
    replay: bool = typer.Option(False, help="serve every model call from the cache"),
    executor: str | None = typer.Option(None, help="where rollouts run: local, or ray (a Ray "
                                        "cluster; pip install 'skilltrain[ray]')"),
    ray_address: str | None = typer.Option(None, help="--executor ray: a running cluster, "
                                           "HOST:PORT (default: a local one on 127.0.0.1)"),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE: any dotted setting, e.g. "
                                   "agent.single_shot=true (VALUE read as YAML; flags win)"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a skill. Flags override the config file."""
    overrides = {
        "data.path": data, "suite": suite, "skill": skill, "target.model": target,
        "benchmark.name": benchmark, "benchmark.data_dir": data_dir,
        "optimizer.model": optimizer, "scorer": scorer, "train.epochs": epochs,
        "train.batch_size": batch_size, "train.minibatch_size": minibatch_size, "train.lr": lr,
        "train.lr_min": lr_min, "train.lr_schedule": lr_schedule, "gate.rule": gate,
        "train.max_steps": max_steps, "budget.max_calls": max_calls,
        "budget.max_tokens": max_tokens, "budget.max_cost": max_cost, "seed": seed, "out": out,
        "cache": cache, "harness": harness, "agent.protocol": agent_protocol,
        "agent.max_turns": max_turns, "command.cmd": cmd, "train.proposals": proposals,
        "train.screen": screen, "train.demonstrations": demonstrations,
        "train.answer_form": answer_form, "train.attribution": attribution,
        "train.prune": prune, "executor.kind": executor, "executor.address": ray_address,
    }
    try:
        flags = {k: v for k, v in overrides.items() if v is not None}
        given = _set_overrides(sets)
        overrides = {**given, **flags}  # flags win over --set, both over the file
        if preset is not None:
            from skilltrain.benchmarks.registry import preset_overrides

            overrides = preset_overrides(preset, benchmark, overrides)
        cfg = _build_config(config, overrides, frozenset(given) - frozenset(flags))
        if seeds is not None:
            from skilltrain.cli_evidence import train_seeds_command

            train_seeds_command(cfg, seeds, lambda one: _run_training(one, quiet, replay))
        else:
            _run_training(cfg, quiet, replay)
    except _user_errors() as exc:
        _fail(exc)


@app.command()
def resume(run_dir: Path = typer.Argument(..., help="an existing run folder"),
           replay: bool = typer.Option(False), quiet: bool = typer.Option(False, "--quiet", "-q"),
           api_key_env: list[str] = typer.Option(
               [], "--api-key-env", help="[ROLE=]VAR: read the key from environment variable "
               "VAR (for a key the first run got inline; config.yaml never keeps it); without "
               "ROLE, for target and optimizer"),
           executor: str | None = typer.Option(None, help="where the rest runs: local or ray"),
           ray_address: str | None = typer.Option(None, help="--executor ray: HOST:PORT"),
           ) -> None:
    """Continue a run from its last completed step (a `train --seeds` folder: seed by seed).
    Where rollouts run may change on resume: the results do not depend on it."""
    from skilltrain.config import use_key_env
    from skilltrain.seeds import is_seeds_folder, resume_plan

    try:
        seeds = None
        if is_seeds_folder(run_dir):
            cfg, seeds = resume_plan(run_dir)
        elif not (run_dir / CONFIG_FILE).exists():
            raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
        else:
            cfg = merge_overrides(load_config(run_dir / CONFIG_FILE), {"out": str(run_dir)},
                                  str(run_dir / CONFIG_FILE))
        moved = {k: v for k, v in (("executor.kind", executor),
                                   ("executor.address", ray_address)) if v is not None}
        if moved:
            cfg = merge_overrides(cfg, moved, "command line")
        for spec in api_key_env:
            role, _, var = spec.rpartition("=")
            for name in [role] if role else ["target", "optimizer"]:
                cfg = use_key_env(cfg, name, var)
        if seeds is not None:
            from skilltrain.cli_evidence import train_seeds_command

            train_seeds_command(cfg, seeds, lambda one: _run_training(one, quiet, replay))
        else:
            _run_training(cfg, quiet, replay)
    except _user_errors() as exc:
        _fail(exc)


@app.command("eval")
def eval_(
    skill: str = typer.Option(..., help="skill file or package folder"),
    data: str | None = typer.Option(None, help="tasks file"),
    suite: str | None = typer.Option(None, help="a built-in suite (its test split)"),
    benchmark: str | None = typer.Option(None, help="a paper benchmark (its test split)"),
    data_dir: str | None = typer.Option(None, help="--benchmark: its data folder"),
    target: list[str] = typer.Option(["local:0.5b"], help="target model; repeat it to score "
                                     "the skill on each in one table, with 95% intervals"),
    scorer: str | None = typer.Option(None),
    harness: str | None = typer.Option(None, help="chat or agent (default: the benchmark's "
                                       "harness, else chat; the command harness needs a "
                                       "config: use train's `command:` section)"),
    max_turns: int | None = typer.Option(None, help="agent harness: model calls per task "
                                         "(default: the benchmark's, else 8)"),
    timeout: float | None = typer.Option(None, min=0.1, help="seconds a model call may take "
                                         "(default 120)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Score a skill on a task file (or a suite's test split), on one target or several."""
    from skilltrain.api import evaluate
    from skilltrain.cli_evidence import eval_inputs, eval_targets, say_deadline, target_and_harness
    from skilltrain.package import load_skill

    try:
        if benchmark:
            from skilltrain.benchmarks.registry import benchmark_test

            tasks, scorer_spec = benchmark_test(benchmark, data_dir)
            scorer_spec = scorer or scorer_spec
        else:
            tasks, scorer_spec = eval_inputs(data, suite, scorer, harness or "chat", "eval")
        if len(target) > 1:
            eval_targets(load_skill(skill), skill, tasks, target, scorer_spec, harness,
                         max_turns, timeout, as_json, benchmark)
            return
        model, runner = target_and_harness(target[0], harness, max_turns, timeout, benchmark)
        start = load_skill(skill)
        say_deadline(len(tasks), model.timeout, "eval")
        result = evaluate(start, tasks, target=model, scorer=scorer_spec, harness=runner)
    except _user_errors() as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"score {result['score']} on {result['n']} tasks "
               f"({result['infra_failures']} infrastructure failures)")
    for kind, value in result["by_type"].items():
        typer.echo(f"  {kind}: {value}")


@app.command("config")
def config_(
    run_dir: Path | None = typer.Argument(None, help="a run folder: the config it runs with"),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML run config"),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE: a dotted setting, e.g. "
                                   "train.epochs=1 (VALUE read as YAML)"),
) -> None:
    """Print the effective config as YAML, each key under its description.

    Defaults are included and credentials stay redacted, so every setting a run uses can be
    read and shared; without RUN_DIR or --config, the defaults."""
    from skilltrain.config_doc import documented_yaml

    try:
        if run_dir is not None and config is not None:
            raise ConfigError("config: give RUN_DIR or --config, not both")
        if run_dir is not None and not (run_dir / CONFIG_FILE).exists():
            raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
        source = run_dir / CONFIG_FILE if run_dir else config
        overrides = _set_overrides(sets)
        if run_dir is not None:  # as `resume` reads it: out is the folder
            overrides = {"out": str(run_dir), **overrides}
        cfg = merge_overrides(load_config(source) if source else TrainConfig(), overrides,
                              "--set" if sets else str(source or "defaults"))
        from skilltrain.run_setup import with_benchmark_agent

        cfg = with_benchmark_agent(cfg)  # a benchmark's agent defaults, as a run applies them
    except _user_errors() as exc:
        _fail(exc)
    typer.echo(f"# effective config of {source or 'the defaults'}: defaults included, "
               "credentials redacted\n" + documented_yaml(cfg), nl=False)


@app.command()
def suites() -> None:
    """List the built-in task suites."""
    from skilltrain.suites import list_suites

    for s in list_suites():
        extra = f"  (needs skilltrain[{s.needs}])" if s.needs else ""
        typer.echo(f"{s.name:16} {s.description}{extra}")


@app.command()
def benchmarks() -> None:
    """List the paper benchmarks (--benchmark NAME --data-dir DIR) and the files each needs."""
    from skilltrain.benchmarks import builtin_benchmarks

    for b in builtin_benchmarks().values():
        agent = "".join(f"; agent.{k}: {json.dumps(v)}" for k, v in b.agent.items())
        typer.echo(f"{b.name:17} {b.harness:12} {b.payload}; from {b.source}{agent}")


@app.command()
def serve(model: str = typer.Argument("0.5b", help="0.5b or 1.5b"),
          port: int = typer.Option(8080), host: str = typer.Option("127.0.0.1")) -> None:
    """Serve an embedded model over the OpenAI-compatible protocol until Ctrl-C."""
    try:
        from skilltrain.local.server import serve_forever

        serve_forever(model, host=host, port=port)
    except _user_errors() as exc:
        _fail(exc)
    except ImportError as exc:
        _fail(RuntimeError(f"{exc}; install with: pip install 'skilltrain[local]'"))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder (finished or not)"),
           out: Path | None = typer.Option(None, "--out", "-o",
                                           help="where to write (default RUN_DIR/report.html)")
           ) -> None:
    """Write a self-contained HTML report of a run (plots, costs, skill lineage); print its path."""
    from skilltrain.report import write_report
    from skilltrain.report.seeds import is_seeds_folder, write_seeds_report

    try:
        path = (write_seeds_report if is_seeds_folder(run_dir) else write_report)(run_dir, out)
    except _user_errors() as exc:
        _fail(exc)
    typer.echo(str(path))


@app.command()
def demo(
    suite: str = typer.Option("house-date", help="a house-convention suite"),
    target: str = typer.Option("local:0.5b"),
    optimizer: str = typer.Option("local:1.5b"),
    steps: int = typer.Option(3, help="training steps (each ~2-3 min on 2 cores)"),
    out: str | None = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """A short real optimization with the embedded local models: no API key, no internet."""
    overrides = {
        "suite": suite, "target.model": target, "optimizer.model": optimizer,
        "train.epochs": 1, "train.batch_size": 20, "train.max_steps": steps, "out": out,
    }
    try:
        _run_training(_build_config(None, overrides), quiet)
    except _user_errors() as exc:
        _fail(exc)


app.command("compare")(compare_command)

if __name__ == "__main__":
    app()
