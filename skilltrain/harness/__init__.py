"""How the target runs one task with a skill. A harness is anything with an async
`run(skill, task, client, sample) -> Rollout`.

- `ChatHarness`: the skill is the system prompt, one reply is the answer.
- `AgentHarness`: a multi-turn tool-using loop in a sandboxed workspace (agent.py).
- `CommandHarness`: an external agent CLI run in a fresh workspace with the skill installed as
  `SKILL.md` (command.py).
- `EnvironmentHarness`: the target plays a user's interactive environment (`module:Class` with
  `reset`/`step`) turn by turn (environment.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skilltrain.config_sections import AgentConfig, CommandConfig, EnvironmentConfig
from skilltrain.harness.agent import AgentHarness
from skilltrain.harness.chat import ChatHarness
from skilltrain.harness.command import PRESETS, CommandHarness
from skilltrain.harness.environment import EnvironmentHarness
from skilltrain.harness.sandbox import Limits, RunResult, Sandbox
from skilltrain.harness.tools import BUILTIN_TOOLS, Tool, ToolError, tool_from_function
from skilltrain.loading import load_callable

__all__ = ["AgentHarness", "ChatHarness", "CommandHarness", "EnvironmentHarness", "Limits",
           "PRESETS", "RunResult", "Sandbox", "Tool", "ToolError", "make_harness",
           "tool_from_function"]

HARNESSES = ("chat", "agent", "command", "environment")


def make_harness(kind: str, *, max_tokens: int = 512, target_model: str = "",
                 agent: AgentConfig | Mapping[str, Any] | None = None,
                 command: CommandConfig | Mapping[str, Any] | None = None,
                 environment: EnvironmentConfig | Mapping[str, Any] | str | None = None) -> Any:
    """Build a harness from the config's `agent:` / `command:` / `environment:` sections (or
    plain mappings of them, validated the same way): their defaults are the config's, stated
    there once.

    The agent's protocol `auto` picks `text` for the embedded local models, whose server does
    not return native tool calls for them, and for agent CLIs as models (cmd:), which take no
    tool definitions; `tools` otherwise. Raises ValueError, with a
    one-line message, for options that cannot be used.
    """
    if kind == "chat":
        return ChatHarness(max_tokens=max_tokens)
    if kind == "agent":
        a = AgentConfig.model_validate(agent or {})
        protocol = a.protocol
        if protocol == "auto":
            protocol = "text" if target_model.startswith(("local:", "cmd:")) else "tools"
        limits = Limits(timeout_s=a.timeout, cpu_s=a.cpu_seconds, memory_mb=a.memory_mb)
        tools = [load_callable(s, "tool") for s in a.tools]
        return AgentHarness(tools=tools, protocol=protocol, max_turns=a.max_turns,
                            max_tokens=max_tokens, limits=limits,
                            observation_chars=a.observation_chars,
                            builtin=BUILTIN_TOOLS if a.builtin is None else a.builtin,
                            single_shot=a.single_shot)
    if kind == "command":
        c = CommandConfig.model_validate(command or {})
        return CommandHarness(c.cmd, preset=c.preset, template=c.template, answer=c.answer,
                              tag=c.tag, answer_file=c.answer_file, timeout_s=c.timeout,
                              passthrough=c.passthrough, model=c.model)
    if kind == "environment":
        e = EnvironmentConfig.model_validate(environment or {})
        if not e.env:
            raise ValueError("environment.env: not set; expected 'module:Class' of an "
                             "environment with reset(task) and step(action)")
        return EnvironmentHarness(e.env, max_steps=e.max_steps, max_tokens=max_tokens,
                                  options=e.options, observation_chars=e.observation_chars)
    raise ValueError(f"harness {kind!r}: expected one of {', '.join(HARNESSES)}")
