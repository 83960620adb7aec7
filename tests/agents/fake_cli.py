"""What our fake agent CLIs (fake_claude.py, fake_codex.py) share: the text skilltrain gave them,
read back into the chat request it came from (the format models/cli_formats.py documents, parsed
here on its own so a change there shows up as a failing test), answered by tests/scripted.py's
Script like the scripted HTTP server answers, and one log line per call of what the CLI saw.

Options every fake takes before the real CLI's own flags (the wrapper scripts the tests put on
PATH as `claude` / `codex` add them):
  --log FILE     append {argv, env, cwd, system, prompt, schema} per call
  --plan PLAN    the Script's analyst plan (default: auto, which needs no state between calls)
  --fail STATUS  fail like the real CLI does on that HTTP status (0: a connection failure)
  --sleep S      sleep S seconds first (a grandchild sleeps too: the deadline kills the group)
  --reply TEXT   reply TEXT instead of the Script's answer
  --garbage      print something that is not the CLI's format, and exit 0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for scripted

from scripted import Script  # noqa: E402

_SCHEMA = re.compile(r"\n\nReply with only a JSON object[^\n]*\nJSON Schema (\w+):\n(\{.*\})\s*\Z",
                     re.DOTALL)
_TURN = re.compile(r"<(user|assistant)>\n(.*?)\n</\1>", re.DOTALL)


def fake_options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and the rest (the real CLI's flags) for the fake's own parser."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--log")
    parser.add_argument("--plan", default="auto")
    parser.add_argument("--fail", type=int)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--reply")
    parser.add_argument("--garbage", action="store_true")
    return parser.parse_known_args(argv)


def request_from(system: str, prompt: str) -> dict[str, Any]:
    """The chat request skilltrain flattened into (system, prompt)."""
    fmt = None
    found = _SCHEMA.search(prompt)
    if found:
        fmt = {"type": "json_schema",
               "json_schema": {"name": found.group(1), "schema": json.loads(found.group(2))}}
        prompt = prompt[:found.start()]
    if not system and prompt.startswith("<system>\n"):  # a plain command's one prompt
        head, _, prompt = prompt.partition("\n</system>\n\n")
        system = head.removeprefix("<system>\n")
    turns = [{"role": r, "content": c} for r, c in _TURN.findall(prompt)] if \
        prompt.startswith("The conversation so far") else [{"role": "user", "content": prompt}]
    messages = ([{"role": "system", "content": system}] if system else []) + turns
    return {"messages": messages, **({"response_format": fmt} if fmt else {})}


def answer(opts: argparse.Namespace, system: str, prompt: str, model: str | None) -> str:
    """The reply: fixed by --reply, else the Script's; every call is logged first."""
    request = request_from(system, prompt)
    if model:
        request["model"] = model
    sleeper = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({opts.sleep})"]
                               ) if opts.sleep else None
    if opts.log:
        fmt = request.get("response_format") or {}
        with open(opts.log, "a", encoding="utf-8") as log:
            log.write(json.dumps({"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(),
                                  "home": os.environ.get("HOME"), "system": system,
                                  "prompt": prompt, "sleeper": sleeper and sleeper.pid,
                                  "schema": (fmt.get("json_schema") or {}).get("name")}) + "\n")
    if opts.sleep:
        time.sleep(opts.sleep)
    if opts.reply is not None:
        return opts.reply
    return Script(analyst_plan=opts.plan.split(",")).respond(request)


def tokens(text: str) -> int:
    return len(text) // 4 + 1


def agent_answer(opts: argparse.Namespace, prompt: str, model: str | None) -> tuple[str, Path]:
    """Agent mode, as the command harness runs a preset: the reply to task.md by the Script's
    target with the installed SKILL.md as its system prompt, and the skill file read."""
    root = Path.cwd()
    skill_file = next(iter(sorted(root.glob("**/SKILL.md"))), None)
    if skill_file is None:
        return "I found no skill.", root
    body = re.sub(r"\A---\n.*?\n---\n", "", skill_file.read_text(encoding="utf-8"),
                  flags=re.DOTALL)
    task = (root / "task.md").read_text(encoding="utf-8").strip()
    reply = answer(opts, body, task, model)
    return f"I read the skill and the task.\nANSWER: {reply}", skill_file
