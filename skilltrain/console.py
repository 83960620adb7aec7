"""What a person sees while a run goes: one line per stage event on a terminal via rich, plain
lines when output is not a terminal, and the closing before/after table."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _literal(event: dict) -> dict:
    """The event with its text values escaped for rich: a model name, a path or a reason may
    hold `[...]`, which rich would read as markup and silently drop from the line."""
    def one(value: Any) -> Any:
        if isinstance(value, str):
            return escape(value)
        return [one(v) for v in value] if isinstance(value, list) else value

    return {k: one(v) for k, v in event.items()}


class Progress:
    """A callback for Trainer(callbacks=[...]). `quiet` keeps only step results and the end."""

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.quiet = quiet
        self.console = console or Console(stderr=True, highlight=False,
                                          force_terminal=None if sys.stderr.isatty() else False)
        self.best: float | None = None

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        line = self._line(kind, _literal(event))
        if line and (not self.quiet or kind in ("start", "estimate", "baseline", "step_end", "end",
                                                "budget_stop", "calibration")):
            self.console.print(line)

    def _line(self, kind: str, e: dict) -> str | None:
        if kind == "start":
            return (f"[bold]skilltrain[/] run -> {e['out']}  (train {e['train']}, val {e['val']}, "
                    f"test {e['test']}; target {e['target']}, optimizer {e['optimizer']}, "
                    f"gate {e['gate']})")
        if kind == "estimate":
            return (f"estimate (upper bound): {e['steps']} steps, {e['target']['calls']:,} target "
                    f"+ {e['optimizer']['calls']:,} optimizer calls, ~{e['tokens']:,} tokens, "
                    f"~${e['cost_usd']:.2f}")
        if kind == "calibration":  # the judge against the user's labels, before the run
            return e["line"]  # escaped by _literal
        if kind == "baseline":
            return f"initial skill: validation score {_fmt(e['val'])} on {e['n']} items"
        if kind == "resume":
            return f"resuming at step {e['step'] + 1} (epoch {e['epoch']})"
        if kind == "step_start":
            return (f"[dim]step {e['step']} (epoch {e['epoch']}, batch {e['batch']}, "
                    f"lr {e['lr']})[/]")
        if kind == "rollout":
            return (f"  rollout   {e['n']} tasks, train score {_fmt(e['score'])}"
                    + (f", [yellow]{e['failures']} infra failures[/]" if e["failures"] else ""))
        if kind == "reflect":
            failed = e.get("failed_calls") or 0
            return (f"  reflect   {e['patches']} patches, {e['edits']} edits proposed"
                    + (f", [yellow]{failed} analyst call{'s' * (failed != 1)} failed "
                       f"({e.get('error')})[/]"
                       if failed else ""))
        if kind == "select":
            return f"  select    {e['chosen']} of {e['proposed']} edits (budget {e['budget']})"
        if kind == "update":
            return f"  update    {e['applied']} applied: {', '.join(e['statuses']) or '-'}"
        if kind == "gate":
            verdict = "[green]accepted[/]" if e["accepted"] else "[red]rejected[/]"
            return (f"  gate      {verdict} {_fmt(e['candidate_score'])} vs "
                    f"{_fmt(e['incumbent_score'])} on {e['items_used']} items")
        if kind == "step_end":
            return (f"step {e['step']}: {e.get('outcome', '?')}  accepted {e['accepted_total']}, "
                    f"rejected {e['rejected_total']}, tokens {e['tokens']:,}, "
                    f"${e['cost_usd']:.4f}")
        if kind == "skip":
            return f"  skipped   {e['reason']}"
        if kind == "budget_stop":
            return f"[yellow]stopping: {e['reason']}[/]"
        if kind == "slow_update":
            return f"  epoch boundary: slow update {e.get('outcome', '')}"
        return None


def summary_table(summary: dict) -> Table:
    table = Table(title="skilltrain: before / after")
    table.add_column("split")
    table.add_column("initial", justify="right")
    table.add_column("best", justify="right")
    table.add_column("change", justify="right")
    for split in ("val", "test"):
        s = summary.get(split) or {}
        a, b = s.get("initial"), s.get("best")
        change = "-" if a is None or b is None else f"{(b - a) * 100:+.1f} pts"
        table.add_row(split, _fmt(a), _fmt(b), change)
    return table


def rate_limit_line(limits: dict[str, dict]) -> str | None:
    """The summary's rate-limit counts in one line, for the roles that were held back at all:
    "rate limits: target 429 x3, 12 waits (8.1 s), concurrency down to 4"."""
    parts = []
    for role, n in sorted(limits.items()):
        if not (n.get("rate_limited") or n.get("waits")):
            continue
        said = [f"429 x{n['rate_limited']}"] if n.get("rate_limited") else []
        if n.get("waits"):
            said.append(f"{n['waits']} waits ({n.get('wait_s', 0):.1f} s)")
        if n.get("concurrency_cuts"):
            said.append(f"concurrency down to {n.get('lowest_concurrency')}")
        parts.append(f"{role} {', '.join(said)}")
    return "rate limits: " + "; ".join(parts) if parts else None


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    console.print(summary_table(summary))
    steps = summary["steps"]
    cache = summary.get("prompt_cache") or {}
    cached = (f" (prompt cache: {cache.get('read_tokens', 0):,} tokens read, "
              f"{cache.get('write_tokens', 0):,} written)"
              if cache.get("read_tokens") or cache.get("write_tokens") else "")
    console.print(f"steps: {steps['accepted']} accepted, {steps['rejected']} rejected, "
                  f"{steps['skipped']} skipped; infra failures: "
                  f"{summary['infra_failures']['total']}; cost ${summary['cost_usd']:.4f}"
                  f"{cached}; wall {summary['wall_s']:.0f}s")
    held = rate_limit_line(summary.get("rate_limits") or {})
    if held:
        console.print(held, markup=False)
    if summary.get("stopped"):
        console.print(f"stopped early: {summary['stopped']}", markup=False)
    # never wrapped: the path is what a user copies; no markup: a path may hold brackets
    console.print(f"best skill: {summary['best_skill']}", soft_wrap=True, highlight=False,
                  markup=False)


class LiveProgress:
    """A live panel for terminals: where the run is, how it is doing, what it has cost."""

    STAGES = {"step_start": "rollout", "rollout": "reflect", "reflect": "aggregate",
              "aggregate": "select", "select": "update", "update": "gate",
              "epoch_boundary": "slow update", "epoch_end": "epoch boundary",
              "step_end": "next step", "baseline": "training"}

    def __init__(self, console: Console | None = None):
        from rich.live import Live

        self.console = console or Console(stderr=True, highlight=False)
        self.state: dict[str, Any] = {"stage": "starting", "done": 0, "total": 0,
                                      "accepted": 0, "rejected": 0, "tokens": 0, "cost": 0.0}
        self.lines = Progress(quiet=True, console=self.console)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                         transient=True)
        self.live.start()

    def __call__(self, event: dict) -> None:
        kind, s = event["event"], self.state
        if kind == "progress":
            s["done"], s["total"] = event["done"], event["total"]
        elif kind == "baseline":
            s["current"] = s["best"] = event["val"]
        elif kind == "step_start":
            s.update(step=event["step"], epoch=event["epoch"], lr=event["lr"], done=0, total=0)
        elif kind == "gate" and event["accepted"]:
            s["current"] = event["candidate_score"]
            s["best"] = max(s.get("best") or 0.0, event["candidate_score"])
        elif kind == "step_end":
            s.update(accepted=event["accepted_total"], rejected=event["rejected_total"],
                     tokens=event["tokens"], cost=event["cost_usd"])
        elif kind == "throttle":  # a role's rate limiter holding calls back, or done with it
            held = s.setdefault("throttle", {})
            if event["status"]:
                held[event["role"]] = event["status"]
            else:
                held.pop(event["role"], None)
        if kind in self.STAGES:
            s["stage"] = self.STAGES[kind]
        if kind == "end":
            self.live.stop()
        self.lines(event)  # step results stay on screen above the panel
        if kind != "end":
            self.live.update(self._render(), refresh=kind not in ("progress", "throttle"))

    def _render(self) -> Table:
        s = self.state
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_row("step", f"{s.get('step', '-')} (epoch {s.get('epoch', '-')}, "
                              f"lr {s.get('lr', '-')})", "stage", s["stage"])
        table.add_row("rollouts", f"{s['done']}/{s['total']}", "val",
                      f"{_fmt(s.get('current'))} (best {_fmt(s.get('best'))})")
        table.add_row("steps", f"{s['accepted']} accepted, {s['rejected']} rejected", "spent",
                      f"{s['tokens']:,} tokens, ${s['cost']:.4f}")
        for role, status in sorted(s.get("throttle", {}).items()):
            table.add_row("limits", escape(f"{role}: {status}"))
        return table

    def close(self) -> None:
        self.live.stop()
