"""An agent CLI as a model for any role: `cmd:claude`, `cmd:codex` or `cmd:"any command"`.

Why: users on a subscription have the CLI, not an API key, and a CLI pointed at the embedded
server trains with no key and no internet. Each call runs the CLI once in a fresh scratch folder
(the command harness's Sandbox: its own HOME and TMPDIR, an allow-listed environment, a deadline
that kills the whole process group), with the request flattened to text (cli_formats.py), and
reads the reply, usage and failures back from what the CLI prints. Retries, the response
cache (it keys on the request, so a CLI call is replayed like any other), the circuit breaker
and schema validation are RoleClient's, as for every backend.

Presets (flags checked against `claude --help` 2.1.197 and `codex exec --help` 0.171.0):

- `claude`: `claude -p --output-format json --no-session-persistence --tools "" --system-prompt-file
  F [--bare] [--model M]`, the prompt on stdin. No tools: a model role answers, it does not act.
  `--bare` (a small prompt, no CLAUDE.md or user settings; its auth is ANTHROPIC_API_KEY only) is
  on when a key or an endpoint is given; without either the CLI's own login is used, so HOME is
  passed through. Its retries are off (ours count them), as are non-essential requests (a
  session-title call per prompt) and the attribution header (it changes every call and would
  defeat a local server's prompt cache). The request's max_tokens becomes
  CLAUDE_CODE_MAX_OUTPUT_TOKENS; temperature and seed cannot be passed to the CLI.
- `codex`: `codex exec --json --skip-git-repo-check --ephemeral --sandbox read-only`, the system
  text as its `model_instructions_file` (replacing Codex's own ~6K-token instructions) and its
  agent tools off (features multi_agent, goals, shell_tool, unified_exec, view_image, web search),
  the prompt on stdin. An endpoint becomes a provider with the Responses wire API and a fresh
  CODEX_HOME; without one the CLI's own login (HOME, CODEX_HOME) is used.
- generic: the command split like a shell would; `{prompt}` in it is replaced by the whole
  prompt, `{prompt_file}` by a file holding it, else the prompt goes to stdin; stdout is the
  reply. Such a command reports no usage, so its calls are counted and its tokens are not.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skilltrain.harness.cli_endpoint import (
    CLAUDE_QUIET,
    NO_KEY,
    anthropic_root,
    codex_provider,
    toml_str,
)
from skilltrain.harness.sandbox import Limits, RunResult, Sandbox, SandboxError
from skilltrain.models.base import Completion, ModelError
from skilltrain.models.cli_formats import (
    Prompt,
    first_json_object,
    flatten,
    read_claude,
    read_codex,
    read_plain,
    timed_out_kind,
)

PRESETS = ("claude", "codex")
_SPEC = re.compile(r"(claude|codex)(?:@(\S+))?")
# Codex's agent features a model role does not use; unknown names are ignored by `-c`.
_CODEX_OFF = ("multi_agent", "goals", "shell_tool", "unified_exec", "view_image")
_NO_SYSTEM = "Answer the user's request directly."
_KEY_ENV = "SKILLTRAIN_CLI_API_KEY"  # how a configured key reaches Codex's provider
_OUTPUT_BYTES = 2_000_000  # per stream; a reply is read from the tail of the JSON stream


@dataclass(frozen=True)
class CliSpec:
    """A parsed `cmd:` model string: a preset (with an endpoint after `@`) or a command."""

    preset: str  # "claude", "codex" or "generic"
    command: str = ""  # the generic command line
    endpoint: str | None = None  # `cmd:claude@local:0.5b`: the endpoint the CLI is pointed at


def parse_spec(spec: str) -> CliSpec:
    """`cmd:claude`, `cmd:codex@local:0.5b`, `cmd:"python agent.py {prompt}"`. Raises
    ValueError with the expected forms."""
    rest = spec.split(":", 1)[1].strip() if spec.startswith("cmd:") else spec.strip()
    if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "\"'":
        rest = rest[1:-1].strip()
    preset = _SPEC.fullmatch(rest)
    if preset:
        return CliSpec(preset.group(1), endpoint=preset.group(2))
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise ValueError(f"{spec!r}: cannot split the command ({exc})") from None
    if not words:
        raise ValueError(f"{spec!r}: expected cmd:claude, cmd:codex or cmd:\"your command\"")
    return CliSpec("generic", command=rest)


@dataclass(frozen=True)
class CliCall:
    """One run of the CLI: its words, environment, stdin and files to write first."""

    argv: list[str]
    passthrough: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)  # scratch-relative path -> text


class CliModel:
    """A ChatModel that runs an agent CLI per call. See the module docstring."""

    def __init__(self, spec: CliSpec | str, *, program: Sequence[str] | None = None,
                 base_url: str | None = None, api_key: str | None = None,
                 model: str | None = None, args: Sequence[str] = (), env: Sequence[str] = (),
                 bare: bool | None = None, timeout: float = 120.0, concurrency: int = 4):
        self.spec = parse_spec(spec) if isinstance(spec, str) else spec
        preset = self.spec.preset
        if preset == "generic" and (base_url or model):
            raise ValueError("a command model takes no base_url or model; pass what it needs "
                             "with extra_body.env (variable names) or in the command")
        words = list(program) if program else (
            shlex.split(self.spec.command) if preset == "generic" else [preset])
        # The CLI runs in a scratch folder: a word naming a file here (`python agent.py`)
        # would not be found there, so it is made absolute.
        self.program = [os.path.abspath(w) if os.path.isfile(w) else w for w in words]
        self.base_url = base_url  # shown in the circuit breaker's messages
        self.api_key = api_key
        self.model = model
        self.args = list(args)
        self.env_names = tuple(env)
        self.deadline_s = float(timeout)
        self._limit = asyncio.Semaphore(concurrency)
        if preset == "generic":
            self.name = f"cmd:{self.spec.command}"
        else:
            self.name = f"cmd:{preset}" + (f"/{model}" if model else "")
        keyed = bool(api_key or base_url or os.environ.get("ANTHROPIC_API_KEY"))
        self.bare = keyed if bare is None else bare
        found = self.program[0]
        if shutil.which(found) is None and not os.path.isfile(found):
            hint = {"claude": " (npm install -g @anthropic-ai/claude-code)",
                    "codex": " (npm install -g @openai/codex)"}.get(preset, "")
            raise ValueError(f"program {found!r} not found on PATH{hint}; "
                             "extra_body.program names another")

    async def complete(self, request: dict[str, Any]) -> Completion:
        if request.get("tools"):
            raise ModelError("fatal", f"{self.name} takes no tool definitions; use the agent "
                             "harness's text protocol (agent.protocol: text)")
        fmt = request.get("response_format")
        prompt = flatten(request.get("messages") or [], fmt)
        async with self._limit:
            result = await asyncio.to_thread(self._run, prompt, request.get("max_tokens"))
        if result.timed_out:
            raise ModelError(timed_out_kind(result.stdout, result.stderr),
                             f"{self.name}: no reply within the {self.deadline_s:g}s deadline "
                             "(its process group was killed)")
        reader = {"claude": read_claude, "codex": read_codex}.get(self.spec.preset, read_plain)
        completion = reader(result.stdout, result.stderr, result.returncode)
        if (fmt or {}).get("json_schema"):
            completion.text = first_json_object(completion.text) or completion.text
        return completion

    def call(self, prompt: Prompt, scratch: Path, max_tokens: int | None = None) -> CliCall:
        """What one request runs in the scratch folder: the preset's words, environment and
        files."""
        if self.spec.preset == "claude":
            return self._claude(prompt, scratch, max_tokens)
        if self.spec.preset == "codex":
            return self._codex(prompt, scratch)
        return self._generic(prompt, scratch)

    def _claude(self, prompt: Prompt, scratch: Path, max_tokens: int | None) -> CliCall:
        argv = [*self.program, "-p", "--output-format", "json", "--no-session-persistence",
                "--tools", "", "--system-prompt-file", str(scratch / "system-prompt.md")]
        if self.bare:
            argv.append("--bare")
        if self.model:
            argv += ["--model", self.model]
        env = {**CLAUDE_QUIET, "CLAUDE_CODE_MAX_RETRIES": "0"}
        if max_tokens:
            env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(max_tokens)
        if self.base_url:  # another endpoint: the caller's Anthropic settings stay out
            env["ANTHROPIC_BASE_URL"] = anthropic_root(self.base_url)
            env["ANTHROPIC_API_KEY"] = self.api_key or NO_KEY
            passthrough: tuple[str, ...] = ()
        else:
            if self.api_key:
                env["ANTHROPIC_API_KEY"] = self.api_key
            passthrough = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")
            if not self.bare:  # the CLI's own login lives in the caller's home
                passthrough += ("HOME", "CLAUDE_CONFIG_DIR")
        return CliCall([*argv, *self.args], passthrough + self.env_names, env, prompt.prompt,
                       {"system-prompt.md": prompt.system or _NO_SYSTEM})

    def _codex(self, prompt: Prompt, scratch: Path) -> CliCall:
        instructions = toml_str(str(scratch / "instructions.md"))
        argv = [*self.program, "exec", "--json", "--skip-git-repo-check", "--ephemeral",
                "--sandbox", "read-only", "-c", f"model_instructions_file={instructions}",
                "-c", 'web_search="disabled"',
                *(w for f in _CODEX_OFF for w in ("-c", f"features.{f}=false"))]
        env: dict[str, str] = {}
        if self.base_url:
            argv += codex_provider(self.base_url, _KEY_ENV if self.api_key else None)
            env["CODEX_HOME"] = str(scratch / ".codex")  # made by _run: no user config
            if self.api_key:
                env[_KEY_ENV] = self.api_key
            passthrough: tuple[str, ...] = ()
        else:
            passthrough = ("HOME", "CODEX_HOME", "OPENAI_API_KEY", "CODEX_API_KEY",
                           "OPENAI_BASE_URL")
        if self.model:
            argv += ["-m", self.model]
        return CliCall([*argv, *self.args, "-"], passthrough + self.env_names, env,
                       prompt.prompt, {"instructions.md": prompt.system or _NO_SYSTEM})

    def _generic(self, prompt: Prompt, scratch: Path) -> CliCall:
        text = prompt.as_one()
        argv = [w.replace("{prompt_file}", str(scratch / "prompt.md")).replace("{prompt}", text)
                for w in self.program]
        fed = any("{prompt" in w for w in self.program)
        return CliCall([*argv, *self.args], self.env_names, {}, None if fed else text,
                       {"prompt.md": text})

    def _run(self, prompt: Prompt, max_tokens: int | None) -> RunResult:
        limits = Limits(timeout_s=self.deadline_s, cpu_s=None, memory_mb=None, file_mb=None,
                        output_bytes=_OUTPUT_BYTES)
        with Sandbox(limits, prefix="skilltrain-cli-") as box:
            call = self.call(prompt, box.workspace, max_tokens)
            for rel, text in call.files.items():
                (box.workspace / rel).write_text(text, encoding="utf-8")
            if "CODEX_HOME" in call.env:
                Path(call.env["CODEX_HOME"]).mkdir(exist_ok=True)
            try:
                return box.run(call.argv, passthrough=call.passthrough, extra_env=call.env,
                               stdin=None if call.stdin is None else call.stdin.encode("utf-8"))
            except SandboxError as exc:
                raise ModelError("connection", f"{self.name}: {exc}") from None

    async def aclose(self) -> None:
        """Nothing stays open between calls; here for the registry's exit stack."""

