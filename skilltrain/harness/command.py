"""The command harness: any external agent CLI, run once per task in a fresh workspace.

The workspace holds the skill installed as an Agent Skills folder (`<skills_dir>/<name>/SKILL.md`
with `name` and `description` front matter), the task as `task.md`, and the task's attachments.
A command template is run there with a wall-clock timeout that kills its whole process group;
the answer is read from the last stdout line starting with a tag (default `ANSWER:`) or from a
named file, and a task's collector (`meta["collect"]`, see agent.py) may turn the workspace into
the answer instead.

Presets fill in the template, where the CLI looks for skills, and which environment variables
it needs (its credentials: an external agent must reach its own model, so these are passed on
purpose; nothing else of the caller's environment is):

- `claude-code`: `claude -p PROMPT` (print mode), skills in `.claude/skills`.
- `codex`: `codex exec PROMPT` with a workspace-write sandbox, skills in `.agents/skills`.
- `generic`: `{cmd}`, the user's own command, skills in `skills`.

Placeholders in a template: {cmd} (the user's command, split like a shell would), {prompt},
{workspace}, {task_file}, {skill_file}, {skill_dir}, {answer_file}, {tag}, {python} (this
interpreter). The command runs without a shell; write `{{` for a literal brace.

`model: "target"` runs the agent on the run's target model instead of its own configuration: the
target's endpoint and name are given to the CLI (cli_endpoint.py), so `--target local:0.5b` puts
Claude Code or Codex on the embedded server, with no key and no internet; its HOME is then a
folder under the workspace's .tmp, the caller's keys stay out, and the CLI's session record is
read back into the trajectory as its transcript.

External agents report no token usage we can read in general, so the rollout's usage is empty;
a non-zero exit or a timeout is an infrastructure failure (`error` set, no score), while a clean
exit without an answer is a wrong (empty) answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from skilltrain.data import Task
from skilltrain.files import write_tree
from skilltrain.harness.agent import (
    Collector,
    attach_files,
    resolve_collector,
    workspace_event,
)
from skilltrain.harness.cli_endpoint import agent_home, agent_on_endpoint, transcript
from skilltrain.harness.sandbox import Limits, RunResult, Sandbox, SandboxError, clip_middle
from skilltrain.models.base import ModelError
from skilltrain.models.client import RoleClient
from skilltrain.records import Rollout
from skilltrain.skill import NAME_RE, Skill

DEFAULT_DESCRIPTION = ("Rules and conventions for the tasks in this workspace. Read it before "
                       "starting any task here.")
PROMPTS = {
    "stdout": ("Do the task described in task.md in this folder. First read the skill "
               "'{skill_name}' ({skill_file}) and follow it. When you are done, print your "
               "final answer on its own line, starting with {tag}"),
    "file": ("Do the task described in task.md in this folder. First read the skill "
             "'{skill_name}' ({skill_file}) and follow it. When you are done, write your final "
             "answer (and nothing else) to {answer_file}."),
}


@dataclass(frozen=True)
class Preset:
    template: str
    skills_dir: str
    passthrough: tuple[str, ...] = ()
    program_words: int = 1  # the words before which options pointing it at a model go


PRESETS: dict[str, Preset] = {
    "claude-code": Preset(
        template=("claude -p {prompt} --output-format text --permission-mode acceptEdits "
                  "--allowedTools Bash,Read,Write,Edit,Glob,Grep,Skill"),
        skills_dir=".claude/skills",
        passthrough=("HOME", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
                     "ANTHROPIC_MODEL", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX"),
    ),
    "codex": Preset(
        template=("codex exec --skip-git-repo-check --sandbox workspace-write --ephemeral "
                  "{prompt}"),
        skills_dir=".agents/skills",
        passthrough=("HOME", "CODEX_HOME", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
        program_words=2,
    ),
    "generic": Preset(template="{cmd}", skills_dir="skills"),
}


def install_skill(workspace: Path, skill: Skill, skills_dir: str, default_name: str) -> Path:
    """Write the skill as `<skills_dir>/<name>/SKILL.md` with name/description front matter
    (the skill's own when it has both, else ours around its body), and a package's other files
    beside it (references/, scripts/, assets/ ... as the CLI reads them); returns SKILL.md."""
    name = skill.name if isinstance(skill.name, str) and NAME_RE.match(skill.name) else None
    if name and skill.description:
        text = skill.text
    else:
        name = name or default_name
        description = skill.description or DEFAULT_DESCRIPTION
        text = (f"---\nname: {name}\ndescription: {_yaml_str(description)}\n---\n\n"
                f"{skill.body.strip()}\n")
    target = workspace / skills_dir / name / "SKILL.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    write_tree(target.parent, skill.resources())  # paths were checked when the file was made
    return target


def _yaml_str(text: str) -> str:
    return '"' + " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def tagged_answer(stdout: str, tag: str) -> str | None:
    """The text after the last line that starts with `tag` (markdown emphasis allowed)."""
    pattern = re.compile(r"^[\s>*_`#-]*" + re.escape(tag) + r"\s*(.*?)[\s*_`]*$", re.MULTILINE)
    found = pattern.findall(stdout)
    return found[-1].strip() if found else None


class CommandHarness:
    """Runs an external agent command per task. See the module docstring."""

    name = "command"

    def __init__(
        self,
        command: str | None = None,
        *,
        preset: str = "generic",
        template: str | None = None,
        answer: Literal["stdout", "file"] = "stdout",
        tag: str = "ANSWER:",
        answer_file: str = "answer.txt",
        timeout_s: float = 600.0,
        passthrough: Sequence[str] | None = None,
        skills_dir: str | None = None,
        skill_name: str = "task-skill",
        prompt: str | None = None,
        limits: Limits | None = None,
        trajectory_chars: int = 3000,
        collect: Collector | None = None,
        keep_workspace: bool = False,
        model: Literal["own", "target"] = "own",
    ):
        if preset not in PRESETS:
            raise ValueError(f"command preset {preset!r}: expected one of {', '.join(PRESETS)}")
        if answer not in PROMPTS:
            raise ValueError(f"answer {answer!r}: expected 'stdout' or 'file'")
        if not NAME_RE.match(skill_name):
            raise ValueError(f"skill_name {skill_name!r}: use 1-64 characters of a-z, 0-9, '-'")
        chosen = PRESETS[preset]
        self.template = template or chosen.template
        if "{cmd}" in self.template and not command:
            raise ValueError(f"command preset {preset!r} needs a command (the {{cmd}} to run)")
        self.command = command or ""
        self.preset = preset
        self.answer = answer
        self.tag = tag
        self.answer_file = answer_file
        self.skills_dir = skills_dir or chosen.skills_dir
        if model not in ("own", "target"):
            raise ValueError(f"model {model!r}: expected 'own' or 'target'")
        self.model = model
        if passthrough is None:  # on the target, the CLI needs none of the caller's settings
            passthrough = () if model == "target" else chosen.passthrough
        self.passthrough = tuple(passthrough)
        self.skill_name = skill_name
        self.prompt = prompt or PROMPTS[answer]
        base = limits or Limits(cpu_s=None, memory_mb=None, file_mb=None)
        self.limits = dataclasses.replace(base, timeout_s=timeout_s)
        self.trajectory_chars = trajectory_chars
        self.collect = collect
        self.keep_workspace = keep_workspace
        self._check_program()

    def argv(self, values: dict[str, str]) -> list[str]:
        """The command for one task: the template split like a shell would, then each word
        filled in (so a prompt with spaces stays one argument)."""
        out: list[str] = []
        for word in shlex.split(self.template):
            for w in shlex.split(self.command) if word == "{cmd}" else [word]:
                try:
                    out.append(w.format_map(values))
                except (KeyError, IndexError, ValueError) as exc:
                    raise ValueError(f"command {w!r}: cannot fill it in ({exc!r}); known "
                                     f"placeholders: {', '.join(values)}") from None
        return out

    def _values(self, workspace: Path, skill_file: Path, skill_name: str) -> dict[str, str]:
        values = {"workspace": str(workspace), "task_file": str(workspace / "task.md"),
                  "skill_file": str(skill_file.relative_to(workspace)),
                  "skill_dir": str(skill_file.parent.relative_to(workspace)),
                  "skill_name": skill_name, "answer_file": self.answer_file, "tag": self.tag,
                  "python": sys.executable}
        values["prompt"] = self.prompt.format_map(values)
        return values

    def _check_program(self) -> None:
        """Fail at construction, not once per task, when the program does not exist."""
        dummy = self._values(Path("/ws"), Path("/ws/s/n/SKILL.md"), "n")
        argv = self.argv(dummy)
        if not argv:
            raise ValueError("command harness: the command is empty")
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            raise ValueError(f"command harness: program {argv[0]!r} not found on PATH")

    async def run(self, skill: Skill, task: Task, client: RoleClient | None = None,
                  sample: int = 0) -> Rollout:
        started = time.monotonic()
        sandbox = await asyncio.to_thread(Sandbox, self.limits, keep=self.keep_workspace)
        try:
            return await self._run(skill, task, sample, sandbox, started, client)
        finally:
            await asyncio.to_thread(sandbox.close)

    async def _run(self, skill: Skill, task: Task, sample: int, sandbox: Sandbox,
                   started: float, client: RoleClient | None) -> Rollout:
        ws = sandbox.workspace
        skill_file = install_skill(ws, skill, self.skills_dir, self.skill_name)
        (ws / "task.md").write_text(task.input.rstrip("\n") + "\n", encoding="utf-8")
        if task.meta and task.meta.get("files"):
            attach_files(ws, task.meta["files"])
        values = self._values(ws, skill_file, skill_file.parent.name)
        argv = self.argv(values)
        env: dict[str, str] = {}
        if self.model == "target":
            words, env = self._on_target(client, ws)
            at = PRESETS[self.preset].program_words
            argv[at:at] = words
            if self.preset == "codex":  # its session record, in the workspace: the transcript
                argv = [w for w in argv if w != "--ephemeral"]
        trajectory: list[dict[str, Any]] = [{"role": "user", "content": values["prompt"]
                                             + "\n\n[task.md]\n" + task.input}]

        def rollout(**fields: Any) -> Rollout:
            trajectory.append(workspace_event(ws, self.keep_workspace))
            return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample,
                           trajectory=trajectory, wall_s=round(time.monotonic() - started, 3),
                           **fields)

        try:
            result = await asyncio.to_thread(sandbox.run, argv, passthrough=self.passthrough,
                                             extra_env=env)
        except SandboxError as exc:
            return rollout(error=str(exc), error_kind="command")
        self._record(trajectory, argv, result)
        record = await asyncio.to_thread(transcript, self.preset, agent_home(ws),
                                         self.trajectory_chars)
        if record is not None:
            trajectory.append(record)
        if result.timed_out:
            return rollout(error=f"the command timed out after {self.limits.timeout_s:g} s",
                           error_kind="timeout")
        if result.returncode != 0:
            # Claude Code prints its API errors on stdout, with nothing on stderr
            tail = clip_middle(result.stderr.strip() or result.stdout.strip(), 300)
            return rollout(error=f"the command exited with status {result.returncode}: {tail}",
                           error_kind="command_failed")
        final = self._read_answer(ws, result)
        if final is None:
            trajectory.append({"role": "harness", "event": "no_answer",
                               "expected": self.tag if self.answer == "stdout"
                               else self.answer_file})
        collector = resolve_collector(task, self.collect)
        answer = final or ""
        if collector is not None:
            answer = await asyncio.to_thread(collector, task, ws, answer)
        return rollout(answer=answer)

    def _on_target(self, client: RoleClient | None, ws: Path) -> tuple[list[str], dict[str, str]]:
        """Words and environment that put the CLI on the target model's endpoint."""
        model = client.model if client is not None else None
        base_url = getattr(model, "base_url", None)
        if client is None or not base_url:
            raise ModelError("fatal", "command.model: target needs a target model with an "
                             "endpoint (local:0.5b, local:1.5b, or a base_url); the target is "
                             f"{getattr(model, 'name', None)!r}")
        return agent_on_endpoint(self.preset, str(base_url), client.model.name, agent_home(ws),
                                 client.settings.max_tokens)

    def _read_answer(self, ws: Path, result: RunResult) -> str | None:
        if self.answer == "stdout":
            return tagged_answer(result.stdout, self.tag)
        target = (ws / self.answer_file).resolve()
        if ws not in target.parents or not target.is_file():
            return None
        return target.read_text(encoding="utf-8", errors="replace").strip()

    def _record(self, trajectory: list[dict[str, Any]], argv: list[str], result: RunResult
                ) -> None:
        n = self.trajectory_chars
        trajectory.append({"role": "harness", "event": "command",
                           "argv": [clip_middle(a, 1000) for a in argv],
                           "exit_code": result.returncode, "wall_s": result.wall_s,
                           "timed_out": result.timed_out})
        trajectory.append({"role": "assistant", "content": clip_middle(result.stdout, n)})
        if result.stderr.strip():
            trajectory.append({"role": "harness", "event": "stderr",
                               "content": clip_middle(result.stderr, n // 2)})
