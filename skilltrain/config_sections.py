"""The plain sections of a run's config: where tasks come from, the harness options and the
budget. They hold no cross-section rules, so they live apart from TrainConfig (config.py),
which composes them and owns loading, merging and redaction."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """A section that refuses unknown keys and checks values on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FieldsConfig(Strict):
    id: str | None = Field(default="id", description="column of the task id (null: numbered)")
    input: str = Field(default="input", description="column of the task input")
    answer: str = Field(default="answer", description="column of the reference answer")
    type: str | None = Field(default="type", description="column of the task type: splits are "
                             "stratified and scores reported by it (null: one type)")


class DataConfig(Strict):
    path: str | None = Field(default=None, description="tasks file (.jsonl, .json, .csv), "
                             "split by ratio")
    train: str | None = Field(default=None, description="pre-split train tasks (with val)")
    val: str | None = Field(default=None, description="pre-split validation tasks: the gate's")
    test: str | None = Field(default=None, description="pre-split test tasks: the final report")
    fields: FieldsConfig = Field(default_factory=FieldsConfig, description="which columns "
                                 "hold what")
    split: tuple[float, float, float] = Field(default=(0.5, 0.25, 0.25), description="train / "
                                              "validation (the gate) / test ratios of `path`")
    seed: int = Field(default=0, description="seed of the split and of a suite's tasks")
    limit: int | None = Field(default=None, ge=1, description="use at most this many tasks")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.path and (self.train or self.val):
            raise ValueError("give either 'path' (split by ratio) or 'train'/'val'/'test' files")
        if (self.train is None) != (self.val is None):
            raise ValueError("pre-split data needs both 'train' and 'val' files")
        return self


class BudgetConfig(Strict):
    max_calls: int | None = Field(default=None, ge=1, description="stop cleanly after this "
                                  "many model calls")
    max_tokens: int | None = Field(default=None, ge=1, description="stop cleanly after this "
                                   "many tokens, all roles")
    max_cost: float | None = Field(default=None, gt=0, description="stop cleanly past this "
                                   "cost, USD (see prices)")


# The agent harness's built-in tools by name (harness/tools.py ALL_BUILTIN_TOOLS; a test keeps
# the two equal): a Literal, so an unknown name is refused with the known ones listed.
BuiltinTool = Literal["python", "read_file", "list_files", "write_file", "glob", "grep"]


class AgentConfig(Strict):
    """Options of the agent harness (`harness: agent`). A benchmark may bring its own values
    for keys the user leaves unset (Benchmark.agent; run_setup.py applies them)."""

    protocol: Literal["auto", "tools", "text"] = Field(
        default="auto", description="tools: native tool calls; text: code blocks and FINAL:; "
        "auto: text for local:* targets, else tools")
    max_turns: int = Field(default=8, ge=1, description="model calls per task")
    tools: list[str] = Field(default_factory=list, description="user tools, module:function")
    timeout: float = Field(default=30.0, gt=0, description="seconds per code run")
    cpu_seconds: int | None = Field(default=20, ge=1, description="CPU seconds per code run "
                                    "(null: no limit)")
    memory_mb: int | None = Field(default=1024, ge=64, description="address space per code "
                                  "run, MB (null: no limit)")
    observation_chars: int = Field(default=3000, ge=200, description="output of a code run "
                                   "shown to the model, middle clipped")
    builtin: list[BuiltinTool] | None = Field(
        default=None, description="built-in tools offered: python, read_file, list_files, "
        "write_file, glob, grep (null: the first four, or the benchmark's set)")
    single_shot: bool = Field(default=False, description="one reply whose code runs once, "
                              "output not shown to the model (else multi-turn with feedback)")


class CommandConfig(Strict):
    """Options of the command harness (`harness: command`)."""

    preset: Literal["claude-code", "codex", "generic"] = Field(
        default="generic", description="the agent CLI: claude-code, codex, or generic (cmd)")
    cmd: str | None = Field(default=None, description="the command for the generic preset")
    template: str | None = Field(default=None, description="command line with placeholders "
                                 "(default: the preset's; see harness/command.py)")
    answer: Literal["stdout", "file"] = Field(default="stdout", description="where the answer "
                                              "is read: a stdout line or answer_file")
    tag: str = Field(default="ANSWER:", description="start of the stdout answer line")
    answer_file: str = Field(default="answer.txt", description="the answer file (answer: file)")
    timeout: float = Field(default=600.0, gt=0, description="seconds per task, then its "
                           "process group is killed")
    passthrough: list[str] | None = Field(default=None, description="environment variables "
                                          "the agent may see (default: the preset's)")
    model: Literal["own", "target"] = Field(default="own", description="the model the agent "
                                            "runs on: its own settings, or the run's target "
                                            "(its endpoint, e.g. local:0.5b; no key needed)")


class PackageConfig(Strict):
    """Options of a skill package (`skill:` naming a folder; see skilltrain/package.py). Every
    budget is in characters: a package's files are text we count, not tokens we estimate."""

    new_files: bool = Field(default=True, description="the optimizer may create a new "
                            "reference file (references/NAME.md or .txt), linked from SKILL.md")
    max_file_chars: int = Field(default=50_000, ge=100, description="size budget of each text "
                                "file, SKILL.md included; an edit past it is refused")
    max_total_chars: int = Field(default=200_000, ge=100, description="size budget of all text "
                                 "files together")
    max_files: int = Field(default=200, ge=1, description="files a package may hold")
    max_binary_bytes: int = Field(default=5_000_000, ge=0, description="binary files (carried "
                                  "along unchanged, not trained), all together")
    shown_chars: int = Field(default=16_000, ge=0, description="chat harness: what the target "
                             "reads of the files SKILL.md references, after SKILL.md (the rest "
                             "is cut, and the prompt says so)")
    optimizer_chars: int = Field(default=16_000, ge=0, description="what optimizer prompts "
                                 "show of the files beside SKILL.md (the file list is complete)")
    check_scripts: bool = Field(default=True, description="changed scripts are checked before "
                                "the gate: Python compiles, shell passes `bash -n`, the "
                                "package's own tests pass (in the sandbox)")
    tests_timeout: float = Field(default=120.0, gt=0, description="seconds for the package's "
                                 "own tests, per candidate")


def _price_entry(entry: tuple[float, ...]) -> tuple[float, ...]:
    if len(entry) not in (2, 4) or any(x < 0 for x in entry):
        raise ValueError("expected [input, output] or [input, output, cache_write, cache_read], "
                         "USD per million tokens, none negative")
    return entry


# One `prices:` entry (models/prices.py): two numbers, or four with the prompt cache's rates.
PriceEntry = Annotated[tuple[float, ...], AfterValidator(_price_entry)]


class ExecutorConfig(Strict):
    """Where rollouts and gate evaluations run (`executor:`, or the shorthand `executor: ray`).

    Results do not depend on it: the driver keeps the response and score caches and the meter,
    so a run gives the same summary either way, and a resume may change it."""

    kind: Literal["local", "ray"] = Field(default="local", description="local: in this "
                                          "process; ray: on a Ray cluster (pip install "
                                          "'skilltrain[ray]')")
    address: str | None = Field(default=None, description="ray: a running cluster, HOST:PORT "
                                "(`ray start --head` prints it; default: RAY_ADDRESS, else a "
                                "local cluster on 127.0.0.1 started for the run)")
    workers: int | None = Field(default=None, ge=1, description="ray: worker processes "
                                "(default: one per node)")
    concurrency: int | None = Field(default=None, ge=1, description="ray: tasks each worker "
                                    "runs at once (default: target.concurrency)")
    num_cpus: float = Field(default=0.0, ge=0.0, description="ray: CPUs reserved per task "
                            "(e.g. 1 for agent CLIs or sandboxed code; 0: tasks that mostly "
                            "wait on a model)")
    retries: int = Field(default=2, ge=0, description="ray: times a task whose worker was "
                         "lost is run again on another, counted as retries.worker_lost")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data


class EnvironmentConfig(Strict):
    """Options of the environment harness (`harness: environment`): the user's interactive
    environment, played turn by turn (harness/environment.py). The shorthand
    `environment: module:Class` sets `env` alone."""

    env: str | None = Field(default=None, description="the environment class, module:Class, "
                            "with reset(task) and step(action) -> (observation, reward, done)")
    max_steps: int = Field(default=30, ge=1, description="actions per episode; past it the "
                           "episode ends with its last reward")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of "
                                    "the class, one instance per rollout")
    observation_chars: int = Field(default=3000, ge=200, description="an observation shown to "
                                   "the target, middle clipped")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"env": data} if isinstance(data, str) else data


class BenchmarkConfig(Strict):
    """A paper benchmark read from a data folder the user brings (skilltrain/benchmarks/): its
    split manifest names the items, its payload holds them; it gives tasks, starting skill,
    scorer and harness like a suite. The shorthand `benchmark: NAME` sets `name` alone."""

    name: str | None = Field(default=None, description="searchqa, livemath, ... (`skilltrain "
                             "benchmarks` lists them)")
    data_dir: str | None = Field(default=None, description="the folder with the paper's split "
                                 "manifest and the benchmark's payload")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data
