"""How the target runs one task with a skill. A harness is anything with an async
`run(skill, task, client, sample) -> Rollout`.

- `ChatHarness`: the skill is the system prompt, one reply is the answer.
- `AgentHarness`: a multi-turn tool-using loop in a sandboxed workspace (agent.py).
- `CommandHarness`: an external agent CLI run in a fresh workspace with the skill installed as
  `SKILL.md` (command.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skilltrain.harness.agent import AgentHarness
from skilltrain.harness.chat import ChatHarness
from skilltrain.harness.command import PRESETS, CommandHarness
from skilltrain.harness.sandbox import Limits, RunResult, Sandbox
from skilltrain.harness.tools import Tool, ToolError, tool_from_function
from skilltrain.loading import load_callable

__all__ = ["AgentHarness", "ChatHarness", "CommandHarness", "Limits", "PRESETS", "RunResult",
           "Sandbox", "Tool", "ToolError", "make_harness", "tool_from_function"]

HARNESSES = ("chat", "agent", "command")


def make_harness(kind: str, *, max_tokens: int = 512, target_model: str = "",
                 agent: Mapping[str, Any] | None = None,
                 command: Mapping[str, Any] | None = None) -> Any:
    """Build a harness from plain config values (the `agent:` / `command:` sections).

    The agent's protocol `auto` picks `text` for the embedded local models, whose server does not
    return native tool calls for them, and `tools` otherwise. Raises ValueError, with a
    one-line message, for options that cannot be used.
    """
    if kind == "chat":
        return ChatHarness(max_tokens=max_tokens)
    if kind == "agent":
        a = dict(agent or {})
        protocol = a.get("protocol", "auto")
        if protocol == "auto":
            protocol = "text" if target_model.startswith("local:") else "tools"
        limits = Limits(timeout_s=a.get("timeout", 30.0), cpu_s=a.get("cpu_seconds", 20),
                        memory_mb=a.get("memory_mb", 1024))
        tools = [load_callable(s, "tool") for s in a.get("tools") or []]
        return AgentHarness(tools=tools, protocol=protocol,
                            max_turns=a.get("max_turns", 8), max_tokens=max_tokens,
                            limits=limits, observation_chars=a.get("observation_chars", 3000))
    if kind == "command":
        c = dict(command or {})
        return CommandHarness(c.get("cmd"), preset=c.get("preset", "generic"),
                              template=c.get("template"), answer=c.get("answer", "stdout"),
                              tag=c.get("tag", "ANSWER:"),
                              answer_file=c.get("answer_file", "answer.txt"),
                              timeout_s=c.get("timeout", 600.0),
                              passthrough=c.get("passthrough"))
    raise ValueError(f"harness {kind!r}: expected one of {', '.join(HARNESSES)}")
