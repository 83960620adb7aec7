"""How much can a skill lift a model on the built-in suites?

For each suite, score the first N test tasks three ways: (a) no system prompt, (b) the suite's
weak starting skill, (c) the hand-written reference skill that states the rule. A suite is worth
training on when (a) and (b) are low and (c) is high: the gap is what training can win.

    python bench/suite_probe.py --base-url http://127.0.0.1:8080/v1 --model local:0.5b
    python bench/suite_probe.py --local 0.5b          # starts the embedded server itself
    python bench/suite_probe.py --local 0.5b --suite gym-leg-counting -n 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from skilltrain.data import Task
from skilltrain.records import Rollout
from skilltrain.scoring import make_scorer, score_rollout
from skilltrain.skill import Skill
from skilltrain.suites import get_suite, gym, house

HOUSE = ("house-number", "house-date", "house-route")
REFERENCE = {**house.REFERENCE_SKILLS, **gym.REFERENCE_SKILLS}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://host:8080/v1")
    where.add_argument("--local", metavar="MODEL", help="start the embedded server (0.5b, 1.5b)")
    p.add_argument("--model", default="local", help="model name to send (default: %(default)s)")
    p.add_argument("--api-key", default="none")
    p.add_argument("--suite", action="append", help=f"suite(s) to probe (default: {HOUSE})")
    p.add_argument("-n", type=int, default=30, help="test tasks per suite (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=None,
                   help="reply limit (default: 48 for house suites, 320 for gym suites, whose "
                        "reference skills ask for brief working)")
    p.add_argument("--json", dest="json_path", help="also write the results here")
    p.add_argument("-v", "--verbose", action="store_true", help="print every wrong answer")
    return p.parse_args(argv)


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    if args.base_url:
        yield args.base_url, args.model
        return
    from skilltrain.local.server import LocalServer

    with LocalServer(args.local, cache_prompt=False) as server:
        yield server.base_url, server.model_id


def _ask(client: Any, model: str, system: str, task: Task, max_tokens: int) -> str:
    messages = [{"role": "system", "content": system}] if system.strip() else []
    messages.append({"role": "user", "content": task.input})
    reply = client.chat.completions.create(
        model=model, messages=messages, temperature=0.0, max_tokens=max_tokens,
        extra_body={"cache_prompt": False},  # deterministic reruns (LOCAL-MODELS.md)
    )
    return (reply.choices[0].message.content or "").strip()


def probe(client: Any, model: str, name: str, n: int, seed: int, max_tokens: int,
          verbose: bool = False) -> dict[str, Any]:
    """Accuracy of each condition on the first `n` test tasks of one suite."""
    suite = get_suite(name)
    tasks = suite.splits(seed).test[:n]
    scorer = make_scorer(suite.scorer)
    conditions = {"none": "", "start": Skill(suite.skill).body}
    if name in REFERENCE:
        conditions["reference"] = Skill(REFERENCE[name]).body
    result: dict[str, Any] = {"suite": name, "n": len(tasks)}
    for label, system in conditions.items():
        started = time.monotonic()
        hard = soft = 0.0
        by_type: dict[str, list[float]] = {}
        for task in tasks:
            answer = _ask(client, model, system, task, max_tokens)
            rollout = Rollout(task_id=task.id, skill_hash=label, answer=answer)
            score = asyncio.run(score_rollout(scorer, task, rollout))
            hard += score.hard
            soft += score.soft
            by_type.setdefault(task.type, []).append(score.hard)
            if verbose and score.hard < 1:
                print(f"    [{label}] {task.input[-70:]!r}: {score.feedback}", file=sys.stderr)
        result[label] = {
            "hard": round(hard / len(tasks), 3), "soft": round(soft / len(tasks), 3),
            "by_type": {k: round(sum(v) / len(v), 2) for k, v in sorted(by_type.items())},
            "wall_s": round(time.monotonic() - started, 1),
        }
    return result


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    from openai import OpenAI

    rows = []
    with _endpoint(args) as (base_url, model):
        client = OpenAI(base_url=base_url, api_key=args.api_key, timeout=120, max_retries=1)
        print(f"model {model} at {base_url}; {args.n} test tasks per suite, seed {args.seed}")
        for name in args.suite or HOUSE:
            limit = args.max_tokens or (48 if name.startswith("house-") else 320)
            row = probe(client, model, name, args.n, args.seed, limit, args.verbose)
            rows.append(row)
            cells = "  ".join(f"{k} {row[k]['hard']:.2f} (soft {row[k]['soft']:.2f}, "
                              f"{row[k]['wall_s']}s)"
                              for k in ("none", "start", "reference") if k in row)
            print(f"{name:22} {cells}")
            if "reference" in row:
                print(f"{'':22} reference by type: {row['reference']['by_type']}")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump({"model": model, "base_url": base_url, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
