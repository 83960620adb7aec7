"""The commands that say whether a result can be trusted: `compare`, `eval` over several
targets, and the summary of `train --seeds`.

They live apart from cli.py (which registers `compare` and calls the rest) because they are the
reading side of a run, not its driving; they end on errors through cli_errors, as cli.py does.
Every table here is plain fixed-width text, so it reads the same in a terminal, a log and a CI
transcript.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from skilltrain.cli_errors import fail, user_errors
from skilltrain.config import ConfigError, TrainConfig
from skilltrain.data import Task
from skilltrain.skill import Skill

HARNESS_CHOICES = ("chat", "agent")


def plain_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers are formatted by the caller."""
    cells = [[str(c) for c in head], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _num(x: Any, sign: bool = False) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return "-"
    return f"{x:+.3f}" if sign else f"{x:.3f}"


def _interval(ci: Sequence[float] | None, sign: bool = False) -> str:
    return "-" if ci is None else f"[{_num(ci[0], sign)}, {_num(ci[1], sign)}]"


def eval_inputs(data: str | None, suite: str | None, scorer: str | None, harness: str,
                command: str) -> tuple[list[Task], Any]:
    """The tasks (a file, or a suite's test split) and the scorer spec `eval` and `compare`
    read; ConfigError (exit 2) for a missing or unusable option, before any model call."""
    from skilltrain.data import load_tasks

    if suite:
        from skilltrain.suites import get_suite

        s = get_suite(suite)
        tasks, spec = s.splits(0).test, scorer or s.scorer
    elif data:
        tasks, spec = load_tasks(data), scorer
    else:
        raise ConfigError(f"{command}: give --data FILE or --suite NAME")
    if spec is None:
        raise ConfigError(f"{command}: --scorer is required with --data")
    if harness not in HARNESS_CHOICES:
        raise ConfigError(f"{command} --harness {harness!r}: expected chat or agent")
    return tasks, spec


def target_and_harness(target: str, harness: str | None, max_turns: int | None,
                       timeout: float | None, benchmark: str | None = None) -> tuple[Any, Any]:
    """The target's section and the harness `eval` / `compare` run it with. With a benchmark:
    its harness unless --harness names another (an agent benchmark scored on chat would be
    scored wrong), its agent settings (Benchmark.agent) under an explicit --max-turns, and its
    environment class for the environment harness. Without one: chat unless --harness says
    agent. max_turns None: the config's default."""
    from skilltrain.config import ModelConfig
    from skilltrain.harness import make_harness

    bench = None
    if benchmark:
        from skilltrain.benchmarks import get_benchmark

        bench = get_benchmark(benchmark)
    kind = harness or (bench.harness if bench else "chat")
    choices = (*HARNESS_CHOICES, *(("environment",) if bench and bench.environment else ()))
    if kind not in choices:
        raise ConfigError(f"--harness {kind!r}: expected {' or '.join(choices)}")
    agent = dict(bench.agent) if bench is not None and kind == "agent" else {}
    if max_turns is not None:
        agent["max_turns"] = max_turns
    environment = {"env": bench.environment} if bench is not None and bench.environment else None
    try:
        runner = make_harness(kind, target_model=target, agent=agent, environment=environment)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"--harness {kind}: {exc}") from None
    return ModelConfig(model=target, **({} if timeout is None else {"timeout": timeout})), runner


def say_deadline(n_tasks: int, timeout: float, what: str) -> None:
    from skilltrain.models.openai_compat import deadline_line

    typer.echo(f"{what}: {n_tasks} tasks; {deadline_line({'target': timeout})}", err=True)


# -- compare ---------------------------------------------------------------------------------

def compare_command(
    skill_a: str = typer.Argument(..., help="skill A (Markdown file): the baseline"),
    skill_b: str = typer.Argument(..., help="skill B: the one that may be better"),
    data: str | None = typer.Option(None, help="tasks file"),
    suite: str | None = typer.Option(None, help="a built-in suite (its test split)"),
    target: str = typer.Option("local:0.5b", help="target model"),
    scorer: str | None = typer.Option(None),
    samples: int = typer.Option(1, help="samples per item and skill (sample k is request k)"),
    harness: str = typer.Option("chat", help="chat or agent"),
    max_turns: int = typer.Option(8, help="agent harness: model calls per task"),
    timeout: float | None = typer.Option(None, min=0.1, help="seconds a model call may take "
                                         "(default 120)"),
    seed: int = typer.Option(0, help="seed of the bootstrap interval"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Is skill B better than skill A on the same items? A paired test, its verdict and the
    items that flip."""
    from skilltrain.compare import compare
    from skilltrain.package import load_skill

    try:
        if samples < 1:
            raise ConfigError(f"compare --samples {samples}: expected at least 1")
        tasks, spec = eval_inputs(data, suite, scorer, harness, "compare")
        a, b = load_skill(skill_a), load_skill(skill_b)
        if a.hash == b.hash:
            raise ConfigError(f"compare: {skill_a} and {skill_b} hold the same skill; nothing "
                              "to compare")
        model, runner = target_and_harness(target, harness, max_turns, timeout)
        say_deadline(len(tasks), model.timeout, f"compare ({samples} sample"
                      f"{'s' * (samples > 1)} per item and skill)")
        result = compare(a, b, tasks, target=model, scorer=spec, harness=runner,
                         samples=samples, seed=seed)
    except user_errors() as exc:
        fail(exc)
    result.a_label, result.b_label = skill_a, skill_b
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(comparison_text(result, target))


def comparison_text(result: Any, target: str) -> str:
    """The verdict, what was tested, the per-type table and the items that flip."""
    total = result.groups[-1]
    if result.binary:
        how = (f"exact McNemar on {total.a_better + total.b_better} discordant "
               f"{'sample pairs' if result.samples > 1 else 'items'} (A only "
               f"{total.a_better}, B only {total.b_better})")
        better = ("A right, B wrong", "B right, A wrong") if result.samples == 1 else \
            ("A better", "B better")
    else:
        how = (f"two-sided sign test on per-item differences (A better {total.a_better}, "
               f"B better {total.b_better})")
        better = ("A better", "B better")
    lines = [result.verdict,
             f"A: {result.a_label}", f"B: {result.b_label}",
             f"target {target}; {how}; interval: paired bootstrap over items", ""]
    rows = [[g.name, g.n, _num(g.a), _num(g.b), _num(g.diff, True), g.a_better, g.b_better,
             g.excluded] for g in result.groups]
    head = ["type", "n", "A", "B", "B - A",
            "A only" if result.binary else "A better", "B only" if result.binary else "B better",
            "excluded"]
    lines += [plain_table(head, rows), ""]
    exact = result.binary and result.samples == 1
    for key, title in zip(("a_better", "b_better"), better):
        items = result.flips[key]
        shown = ", ".join(i.id if exact else f"{i.id} ({i.a:.2f} -> {i.b:.2f})" for i in items)
        lines.append(f"{title} ({len(items)}): {shown or '-'}")
    return "\n".join(lines)


# -- eval over several targets ---------------------------------------------------------------

def eval_targets(start: Skill, label: str, tasks: list[Task], targets: Sequence[str],
                 scorer: Any, harness: str | None, max_turns: int | None,
                 timeout: float | None, as_json: bool, benchmark: str | None = None) -> None:
    """`eval --target A --target B ...` of the skill `start` (read from `label`): one row per
    target; exit 1 when none scored."""
    from skilltrain.transfer import evaluate_targets

    try:
        pairs = [target_and_harness(t, harness, max_turns, timeout, benchmark)
                 for t in targets]
        say_deadline(len(tasks), pairs[0][0].timeout, f"eval on {len(targets)} targets")
        rows = evaluate_targets(start, tasks, [m for m, _ in pairs], scorer=scorer,
                                harnesses=[h for _, h in pairs])
    except user_errors() as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps({"skill": label, "tasks": len(tasks),
                               "targets": [r.to_json() for r in rows]}, indent=2))
    else:
        table = [[r.target, _num(r.score), _interval(r.ci95), r.n,
                  "error" if r.error else r.infra_failures] for r in rows]
        typer.echo(plain_table(["target", "score", "95% interval", "n", "failures"], table))
        for r in rows:
            if r.error:
                typer.echo(f"{r.target}: {r.error}")
    if all(r.error for r in rows):
        raise typer.Exit(1)


# -- train --seeds ---------------------------------------------------------------------------

def train_seeds_command(cfg: TrainConfig, n: int,
                        run_one: Callable[[TrainConfig], object]) -> None:
    """Run the seeds (the caller's `run_one` trains one, with its progress), then print the
    per-seed rows and the mean test gain with its interval. Errors go to the caller."""
    from skilltrain.seeds import train_seeds

    def on_seed(k: int, seed: int, folder: Path, skipped: bool) -> None:
        note = ": finished earlier, not rerun" if skipped else ""
        typer.echo(f"== seed {seed} ({k + 1} of {n}) -> {folder}{note}", err=True)

    typer.echo(seeds_text(train_seeds(cfg, n, run_one=run_one, on_seed=on_seed)))


def seeds_text(data: dict[str, Any]) -> str:
    """seeds.json as the summary a person reads."""
    rows = [[r["seed"], _num(r.get("val_initial")), _num(r.get("val_best")),
             _num(r.get("test_initial")), _num(r.get("test_best")),
             _num(r.get("test_gain"), True), r.get("accepted", "-"),
             "-" if r.get("wall_s") is None else f"{r['wall_s']:.1f}",
             "-" if r.get("cost_usd") is None else f"${r['cost_usd']:.4f}",
             r.get("status", "-")] for r in data["rows"]]
    head = ["seed", "val initial", "val best", "test initial", "test best", "test gain",
            "accepted", "wall s", "cost", "status"]
    gain = data["test_gain"]
    if gain["ci95"] is not None:
        line = (f"mean test gain {_num(gain['mean'], True)}, 95% "
                f"{_interval(gain['ci95'], True)} (Student t over {gain['n']} seeds)")
    else:
        line = (f"mean test gain {_num(gain['mean'], True)} over {gain['n']} seed"
                f"{'s' * (gain['n'] != 1)} (an interval needs two seeds with a test score)")
    return "\n".join([f"seeds: {data['n']} runs of one config, seeds {data['seeds'][0]}.."
                      f"{data['seeds'][-1]}, in {data['root']}", plain_table(head, rows), line,
                      f"total wall {data['wall_s']:.1f} s, cost ${data['cost_usd']:.4f}; "
                      f"{Path(data['root']) / 'seeds.json'}"])
