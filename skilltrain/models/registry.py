"""Turning a model string into a live ChatModel.

`openai:NAME` uses OPENAI_BASE_URL / OPENAI_API_KEY unless the role sets `base_url` and
`api_key_env`; `anthropic:MODEL` speaks Anthropic's Messages API (optional `anthropic` extra) with
ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY under the same rule; `local:0.5b` / `local:1.5b` start
the embedded llama.cpp server on 127.0.0.1; `cmd:claude` / `cmd:codex` / `cmd:"a command"` run an
agent CLI per call (models/cli_model.py); any other string is sent as-is to the role's `base_url`.
"""

from __future__ import annotations

import os
import shlex
from contextlib import AsyncExitStack
from typing import Any

from skilltrain.config import ConfigError, ModelConfig
from skilltrain.models.base import ChatModel
from skilltrain.models.limits import RateLimits
from skilltrain.models.openai_compat import OpenAIModel


async def open_model(cfg: ModelConfig, stack: AsyncExitStack, role: str,
                     servers: dict[str, object] | None = None) -> ChatModel:
    """`servers` (owned by the caller's run) lets target and optimizer share one local server
    when they name the same embedded model."""
    spec = cfg.model
    api_key = cfg.api_key.get_secret_value() if cfg.api_key else None
    if cfg.api_key_env:
        api_key = os.environ.get(cfg.api_key_env)
        if not api_key:
            raise ConfigError(f"{role}.api_key_env: environment variable {cfg.api_key_env} "
                              "is not set")
    extra = dict(cfg.extra_body)
    if spec.startswith("anthropic:"):
        native = _open_anthropic(cfg, role, api_key)
        stack.push_async_callback(native.aclose)
        return native
    if cfg.thinking_budget is not None:
        raise ConfigError(f"{role}.thinking_budget: only anthropic: models take a thinking "
                          f"budget; {role}.model is {spec!r}")
    if spec.startswith("cmd:"):
        return await _open_cli(cfg, stack, role, api_key, servers)
    if spec.startswith("local:"):
        server = await _local_server(spec.split(":", 1)[1], stack, servers)
        # The server's prompt cache stays on: a skill is a long shared prefix, and re-reading it
        # made every target call ~10x slower (measured: 3.5 s vs 0.35 s on the 0.5B). The
        # rare temperature-0 wobble it brings is absorbed by our response cache, which is
        # what makes replay exact; `extra_body: {cache_prompt: false}` turns it off.
        model = OpenAIModel(server.model_id, base_url=server.base_url, api_key="local",
                            timeout=cfg.timeout, concurrency=min(cfg.concurrency, 2),
                            extra_body=extra, limits=RateLimits(rpm=cfg.rpm, tpm=cfg.tpm),
                            transport=cfg.transport)
    else:
        name = spec.split(":", 1)[1] if spec.startswith("openai:") else spec
        base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY")
        if base_url is None and api_key is None:
            raise ConfigError(f"{role}.model {spec!r}: no API key; set OPENAI_API_KEY or "
                              f"{role}.api_key_env, or give {role}.base_url")
        model = OpenAIModel(name, base_url=base_url, api_key=api_key, timeout=cfg.timeout,
                            concurrency=cfg.concurrency, extra_body=extra,
                            limits=RateLimits(rpm=cfg.rpm, tpm=cfg.tpm),
                            transport=cfg.transport)
    stack.push_async_callback(model.aclose)
    return model


def _open_anthropic(cfg: ModelConfig, role: str, api_key: str | None) -> ChatModel:
    """`anthropic:MODEL`, refused with one line when the SDK is missing, when there is neither
    a key nor an endpoint, or when the model is known to reject a thinking budget."""
    try:
        from skilltrain.models.anthropic_model import AnthropicModel
    except ModuleNotFoundError as exc:
        if exc.name != "anthropic":
            raise
        raise ConfigError(f"{role}.model {cfg.model!r}: the anthropic package is not installed; "
                          "pip install 'skilltrain[anthropic]'") from None
    from skilltrain.models.anthropic_wire import capabilities

    name = cfg.model.split(":", 1)[1]
    base_url = cfg.base_url or os.environ.get("ANTHROPIC_BASE_URL")
    api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
    if not name:
        raise ConfigError(f"{role}.model: expected anthropic:MODEL, e.g. "
                          "anthropic:claude-sonnet-4-5")
    if base_url is None and api_key is None:
        raise ConfigError(f"{role}.model {cfg.model!r}: no API key; set ANTHROPIC_API_KEY or "
                          f"{role}.api_key_env, or give {role}.base_url")
    if cfg.thinking_budget is not None and not capabilities(name).budget_thinking:
        raise ConfigError(f"{role}.thinking_budget: {name} takes no thinking budget (Claude 4.7 "
                          "and later answer it with HTTP 400 and think adaptively); remove it")
    return AnthropicModel(name, base_url=base_url, api_key=api_key, timeout=cfg.timeout,
                          concurrency=cfg.concurrency, thinking_budget=cfg.thinking_budget,
                          extra_body=dict(cfg.extra_body),
                          limits=RateLimits(rpm=cfg.rpm, tpm=cfg.tpm))


async def _local_server(name: str, stack: AsyncExitStack, servers: dict[str, object] | None
                        ) -> Any:
    """The embedded server for `name`, started once per run and shared by the roles."""
    from skilltrain.local.server import LocalServer  # optional dependency

    server = (servers or {}).get(name)
    if server is None:
        server = LocalServer(name)
        await stack.enter_async_context(server)
        if servers is not None:
            servers[name] = server
    return server


CLI_OPTIONS = ("program", "model", "args", "env", "bare")  # a cmd: model's extra_body keys


async def _open_cli(cfg: ModelConfig, stack: AsyncExitStack, role: str, api_key: str | None,
                    servers: dict[str, object] | None) -> ChatModel:
    """`cmd:claude`, `cmd:codex`, `cmd:"a command"` (models/cli_model.py). The endpoint comes
    from `cmd:claude@ENDPOINT` or `base_url`; `local:0.5b` / `local:1.5b` there start (or share)
    the embedded server, whose /v1/messages and /v1/responses the CLIs speak. `extra_body` holds
    the CLI's options: program, model, args, env (variable names passed through), bare."""
    from skilltrain.models.cli_model import CliModel, parse_spec

    try:
        spec = parse_spec(cfg.model)
    except ValueError as exc:
        raise ConfigError(f"{role}.model: {exc}") from None
    options = dict(cfg.extra_body)
    unknown = sorted(set(options) - set(CLI_OPTIONS))
    if unknown:
        raise ConfigError(f"{role}.extra_body: {', '.join(unknown)} is not an option of a cmd: "
                          f"model; expected {', '.join(CLI_OPTIONS)}")
    words = {k: options.get(k) for k in ("program", "args", "env")}
    for key, value in words.items():
        if isinstance(value, str):
            words[key] = shlex.split(value) if key != "env" else [value]
        elif value is not None and not (isinstance(value, list)
                                        and all(isinstance(w, str) for w in value)):
            raise ConfigError(f"{role}.extra_body.{key}: expected a list of strings")
    endpoint = spec.endpoint or cfg.base_url
    model, concurrency = options.get("model"), cfg.concurrency
    if endpoint and endpoint.startswith("local:"):
        server = await _local_server(endpoint.split(":", 1)[1], stack, servers)
        endpoint, model = server.base_url, model or server.model_id
        concurrency = min(concurrency, 2)
    try:
        cli = CliModel(spec, program=words["program"], base_url=endpoint, api_key=api_key,
                       model=model, args=words["args"] or (), env=words["env"] or (),
                       bare=options.get("bare"), timeout=cfg.timeout, concurrency=concurrency)
    except ValueError as exc:
        raise ConfigError(f"{role}.model {cfg.model!r}: {exc}") from None
    stack.push_async_callback(cli.aclose)
    return cli
