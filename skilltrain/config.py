"""TrainConfig: every setting of a run, validated with field-level errors, loadable from YAML.

Secrets never live here in clear: a role names the environment variable that holds its key
(`api_key_env`); a key given inline is kept as a SecretStr and redacted when the config is saved,
and so are credentials inside `base_url` (userinfo, `?key=`-like parameters) and `extra_body`
values under key/token/secret/authorization-like names (redaction.py). A resume cannot read them
back from the run folder, so redaction.missing_secrets names what must be supplied again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from skilltrain.config_sections import (
    AgentConfig,
    BenchmarkConfig,
    BudgetConfig,
    CommandConfig,
    DataConfig,
    EnvironmentConfig,
    ExecutorConfig,
    PackageConfig,
    PriceEntry,
    Strict,
)
from skilltrain.redaction import REDACTED, ROLES, redact_tree, redact_url, sensitive_name


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and what was expected.
    `key` is the dotted setting at fault when known, so the CLI can name the flag that set it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key




class ModelConfig(Strict):
    model: str = Field(description="openai:NAME, anthropic:MODEL, a model name at base_url, "
                       "local:0.5b / local:1.5b (embedded, no key), or an agent CLI: "
                       "cmd:claude, cmd:codex")
    base_url: str | None = Field(default=None, description="the endpoint (default: "
                                 "OPENAI_BASE_URL or ANTHROPIC_BASE_URL, else the provider's)")
    api_key_env: str | None = Field(default=None, description="environment variable holding "
                                    "the key (default: OPENAI_API_KEY or ANTHROPIC_API_KEY)")
    api_key: SecretStr | None = Field(default=None, description="a key given inline; "
                                      "config.yaml keeps it redacted")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="sampling temperature")
    max_tokens: int | None = Field(default=None, ge=1, description="reply limit; unset: the "
                                   "role's default (target 512, optimizer 2048)")
    concurrency: int = Field(default=8, ge=1, description="calls in flight at once (local: "
                             "at most 2)")
    timeout: float = Field(default=120.0, gt=0, description="seconds a whole call may take")
    transport: Literal["auto", "aiohttp", "sdk"] = Field(
        default="auto", description="OpenAI-compatible calls: aiohttp (cheaper per call), "
        "sdk (the openai SDK's client); auto: aiohttp where installed")
    rpm: int | None = Field(default=None, ge=1, description="requests per minute at most "
                            "(null: no limit of ours; 429s still slow the role down)")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute at most, "
                            "estimated before a call, corrected by its usage (null: no limit)")
    retries: int = Field(default=4, ge=0, description="retries of a timeout, HTTP error or "
                         "unparsable reply")
    retry_backoff: float = Field(default=0.5, ge=0.0, description="seconds, doubled per retry")
    seed: int | None = Field(default=0, description="sampling seed sent with each call, plus "
                             "the sample's index (null: none sent)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra request fields, "
                                       "e.g. {cache_prompt: false}")
    thinking_budget: int | None = Field(default=None, ge=1024, description="anthropic: models "
                                        "only: extended-thinking tokens per call, >= 1024, sent "
                                        "on top of max_tokens (Claude 4.7+ take none)")


class TrainingConfig(Strict):
    epochs: int = Field(default=2, ge=1, description="the paper used 4; screening and the "
                        "examples candidate make each step count for more")
    batch_size: int = Field(default=40, ge=1, description="train tasks rolled out per step")
    minibatch_size: int = Field(default=20, ge=1, description="failures per analyst call; "
                                "the paper used 8 full trajectories, our rows are compact")
    merge_group: int = Field(default=8, ge=2, description="patches per merge call")
    lr: int = Field(default=4, ge=1, description="edits per step at most, at the start")
    lr_min: int = Field(default=2, ge=1, description="edits per step at the end of a decaying "
                        "schedule (unset: at most 2, never above lr)")
    lr_schedule: Literal["constant", "linear", "cosine", "autonomous"] = Field(
        default="cosine", description="how the edit budget goes from lr to lr_min; "
        "autonomous: the optimizer picks, up to lr")
    analyse_successes: bool = Field(default=False, description="also analyse what went right "
                                    "(the paper does; one more long optimizer call per step)")
    rejected_buffer: int = Field(default=8, ge=0, description="rejected edits remembered and "
                                 "shown to the analysts (0: off)")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many steps")
    update_mode: Literal["patch", "rewrite", "full_rewrite"] = Field(
        default="patch", description="patch: apply the edits; rewrite: one call rewrites the "
        "skill from them; full_rewrite: each analyst writes a skill, one call picks")
    edit_ops: list[Literal["append", "insert_after", "replace", "delete"]] = Field(
        default_factory=lambda: ["append", "insert_after", "replace", "delete"], min_length=1,
        description="edit operations the analysts may use")
    max_skill_tokens: int = Field(default=2000, ge=50, description="length budget for rewrites")
    slow_update: Literal["gated", "force", "off"] = Field(
        default="gated", description="epoch-boundary guidance block: gated like a candidate, "
        "force (the reference code) or off")
    slow_update_samples: int = Field(default=20, ge=1, description="train tasks compared at "
                                     "each epoch boundary")
    meta_skill: bool = Field(default=True, description="optimizer-only notes at each epoch "
                             "boundary, prepended to the next epoch's optimizer calls")
    appendix: bool = Field(default=False, description="skill-aware appendix: lapses become "
                           "short reminders in a protected block")
    appendix_threshold: int = Field(default=8, ge=1, description="compact the appendix past "
                                    "this many reminders")
    appendix_keep: int = Field(default=5, ge=1, description="reminders a compaction keeps")
    proposals: int = Field(default=3, ge=0, description="rule proposals per step: sampled "
                           "rule analysts, each on its own cut of the failures and each a "
                           "candidate of its own (0: the paper's analysts only)")
    proposal_temperature: float = Field(default=0.8, ge=0.0, le=2.0,
                                        description="sampling temperature of proposals 2..N")
    screen: bool = Field(default=True, description="screen candidates on the step's train "
                         "batch; only the best one is gated")
    demonstrations: bool = Field(default=True, description="propose a worked-examples block "
                                 "of train items with their references as a candidate")
    answer_form: bool = Field(default=True, description="when most failing answers hold the "
                              "correct answer inside other text, propose an answer-format "
                              "instruction as a candidate")
    max_examples: int = Field(default=8, ge=1, description="items in the worked-examples "
                              "block at most")
    examples_chars: int = Field(default=2400, ge=200, description="size bound of the block")
    adapt: bool = Field(default=True, description="narrow edit operations when the optimizer's "
                        "anchored edits keep missing or its replies keep failing")
    attribution: bool = Field(default=True, description="at the end: which accepted edit "
                              "fixed and broke which val/test items (costs evaluations, "
                              "counted in the summary)")
    prune: bool = Field(default=False, description="at the end: remove sections/paragraphs "
                        "of the best skill the gate finds it no worse without (docs: prune.py)")
    prune_tries: int = Field(default=20, ge=1, description="removals pruning tries at most")

    @model_validator(mode="before")
    @classmethod
    def _default_floor(cls, data: Any) -> Any:
        """An unset lr_min follows lr down (the paper's floor is 2, never above lr)."""
        if isinstance(data, dict) and data.get("lr_min") is None and "lr" in data:
            try:
                data = {**data, "lr_min": min(2, int(data["lr"]))}
            except (TypeError, ValueError):
                pass  # the field validator reports the bad lr
        return data

    @model_validator(mode="after")
    def _lr_order(self) -> TrainingConfig:
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self


class GateConfig(Strict):
    rule: str = Field(default="default", description="acceptance rule on the validation "
                      "split: default (paired), strict (the paper's), strict_racing, paired, ...")
    metric: Literal["hard", "soft", "mix"] = Field(
        default="hard", description="score compared: hard (correct), soft (partial credit), "
        "or mix")
    soft_weight: float = Field(default=0.5, ge=0.0, le=1.0, description="soft's weight in mix")
    options: dict[str, Any] = Field(default_factory=dict, description="the rule's own options "
                                    "(docs/gate.md)")

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, rule: str) -> str:
        """Checked with the config, not when the run opens: before any file or model call."""
        from skilltrain.gate import GATE_NAMES

        if rule != "default" and rule not in GATE_NAMES:
            raise ValueError(f"unknown gate; expected default, {', '.join(GATE_NAMES)}")
        return rule

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from skilltrain.gate import DEFAULT_GATE, make_gate

        rule = info.data.get("rule")
        if rule is not None:  # else the rule's own error is the one reported
            try:
                make_gate(DEFAULT_GATE if rule == "default" else rule, **options)
            except (TypeError, ValueError) as exc:
                raise ValueError(str(exc)) from None
        return options


DEFAULT_MODELS = {"target": "local:0.5b", "optimizer": "local:1.5b"}
# Reply limits that fit what each role writes: a target's answer is short, while the
# optimizer's JSON (analyses with edits, merges, rewrites) was measured cut at 512.
ROLE_MAX_TOKENS = {"target": 512, "optimizer": 2048, "judge": 1024}


class TrainConfig(Strict):
    data: DataConfig = Field(default_factory=DataConfig, description="the tasks")
    suite: str | None = Field(default=None, description="a built-in suite (tasks, starting "
                              "skill, scorer) instead of data")
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig, description="a paper "
                                       "benchmark from a data folder, instead of data")
    skill: str | None = Field(default=None, description="starting skill: a Markdown file, or "
                              "a package folder with SKILL.md (default: the suite's, else empty)")
    package: PackageConfig = Field(default_factory=PackageConfig, description="budgets and "
                                   "switches of a skill package (a skill folder)")
    scorer: str | dict[str, Any] | None = Field(
        default=None, description="exact, normalized, numeric, contains, regex, f1, choice, "
        "rules, squad, anls, officeqa, reward (environment harness), module:function, or "
        "e.g. {name: numeric, tolerance: 0.01} or {name: rules, rules: [{contains: TEXT}, "
        "{min_chars: 40}]} or {name: judge, model: M, rubric: [...]} (judge.py; default: the "
        "suite's)")
    harness: Literal["chat", "agent", "command", "environment"] = Field(
        default="chat", description="chat (one reply), agent (runs code in a sandbox), "
        "command (an external agent CLI) or environment (an interactive environment)")
    agent: AgentConfig = Field(default_factory=AgentConfig)
    command: CommandConfig = Field(default_factory=CommandConfig)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    target: ModelConfig = Field(default_factory=lambda: ModelConfig(
        model=DEFAULT_MODELS["target"], max_tokens=ROLE_MAX_TOKENS["target"]),
        description="the frozen model that does the tasks")
    optimizer: ModelConfig = Field(default_factory=lambda: ModelConfig(
        model=DEFAULT_MODELS["optimizer"], max_tokens=ROLE_MAX_TOKENS["optimizer"]),
        description="the model that reads rollouts and proposes edits")
    judge: ModelConfig | None = Field(default=None, description="the model of scorer judge "
                                      "(unset: the optimizer's section; judge.py)")
    train: TrainingConfig = Field(default_factory=TrainingConfig,
                                  description="the optimization loop: steps, edits, candidates")
    gate: GateConfig = Field(default_factory=GateConfig,
                             description="when a candidate replaces the current skill")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig,
                                     description="where rollouts and gate evaluations run")
    budget: BudgetConfig = Field(default_factory=BudgetConfig,
                                 description="limits at which a run stops cleanly")
    prices: dict[str, PriceEntry] = Field(default_factory=dict, description="USD per million "
                                          "tokens by model: [input, output(, cache_write, "
                                          "cache_read)]")
    out: str | None = Field(default=None, description="run folder (default: runs/NAME-TIME); "
                            "an existing one resumes")
    cache: str | None = Field(default=None, description="shared response cache file")
    seed: int = Field(default=0, description="seed of batches, samples and the gate's order")

    @model_validator(mode="before")
    @classmethod
    def _default_models(cls, data: Any) -> Any:
        """A role section that sets only, say, max_tokens keeps the default model."""
        if isinstance(data, dict):
            for role, model in DEFAULT_MODELS.items():
                section = data.get(role)
                if isinstance(section, dict) and "model" not in section:
                    data = {**data, role: {**section, "model": model}}
        return data

    @field_validator("target", "optimizer", "judge")
    @classmethod
    def _role_max_tokens(cls, value: ModelConfig | None, info: ValidationInfo
                         ) -> ModelConfig | None:
        """An unset max_tokens gets the role's default, so a YAML `optimizer:` section without
        it does not inherit the target's short limit; a copy, so a ModelConfig the caller
        passes (perhaps to both roles) is left as it was."""
        if value is not None and value.max_tokens is None and info.field_name is not None:
            return value.model_copy(update={"max_tokens": ROLE_MAX_TOKENS[info.field_name]})
        return value

    def redacted(self) -> dict[str, Any]:
        """The config as saved in the run folder: every credential is replaced by a marker
        (inline keys, credentials in base_url, sensitive extra_body values)."""
        data = self.model_dump(mode="json")
        for role in ROLES:
            section = data[role]
            if section is None:  # an unset judge: the optimizer's section
                continue
            if section.get("api_key"):
                section["api_key"] = REDACTED
            if section.get("base_url"):
                section["base_url"] = redact_url(section["base_url"])
            section["extra_body"] = redact_tree(section["extra_body"], False)
        return data


def _explain(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    got = err.get("input")
    hidden = any(sensitive_name(str(p)) or p == "base_url" for p in err.get("loc", ()))
    shown = "" if err.get("type") in ("extra_forbidden", "missing") or isinstance(got, dict) \
        or hidden else f", got {got!r}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {where}: {msg}{shown}{more}"


def parse_config(data: dict[str, Any], source: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        key = ".".join(str(p) for p in exc.errors()[0].get("loc", ()))
        raise ConfigError(_explain(exc, source), key or None) from None


def load_config(path: str | Path) -> TrainConfig:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; expected a YAML config") from None
    except RecursionError:
        raise ConfigError(f"{p}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}{line}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    return parse_config(data, str(p))


def merge_overrides(config: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    """Apply dotted-key overrides (from CLI flags) and re-validate the whole config. Only the
    keys set (in the file, by a flag) are carried, so which ones the user set survives the merge
    (`model_fields_set`; a benchmark fills the agent keys left unset, run_setup.py)."""
    data = config.model_dump(mode="python", exclude_unset=True)
    lr = overrides.get("train.lr")
    if lr is not None and overrides.get("train.lr_min") is None:  # lowering lr lowers the floor
        data.setdefault("train", {})["lr_min"] = min(config.train.lr_min, lr)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = value
    for role in ROLES:
        key = (data.get(role) or {}).get("api_key")
        if isinstance(key, SecretStr):
            data[role]["api_key"] = key.get_secret_value()
    return parse_config(data, source)


def use_key_env(config: TrainConfig, role: str, var: str) -> TrainConfig:
    """How a resume gets back a key config.yaml keeps redacted: `role` reads env var `var`."""
    if role not in ROLES or not var:
        raise ConfigError(f"--api-key-env {role}={var}: expected [ROLE=]VAR, ROLE target or "
                          "optimizer or judge, VAR an environment variable name")
    if getattr(config, role) is None:  # an unset judge section: the optimizer's is used
        raise ConfigError(f"--api-key-env {role}={var}: this run's judge uses the optimizer's "
                          f"section; give --api-key-env optimizer={var}")
    section = getattr(config, role).model_copy(update={"api_key": None, "api_key_env": var})
    return config.model_copy(update={role: section})


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.redacted(), sort_keys=False, allow_unicode=True)
