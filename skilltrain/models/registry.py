"""Turning a model string into a live ChatModel.

`openai:NAME` uses OPENAI_BASE_URL / OPENAI_API_KEY unless the role sets `base_url` and
`api_key_env`; `local:0.5b` / `local:1.5b` start the embedded llama.cpp server on 127.0.0.1;
any other string is sent as-is to the role's `base_url`.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack

from skilltrain.config import ConfigError, ModelConfig
from skilltrain.models.openai_compat import OpenAIModel


async def open_model(cfg: ModelConfig, stack: AsyncExitStack, role: str,
                     servers: dict[str, object] | None = None) -> OpenAIModel:
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
    if spec.startswith("local:"):
        from skilltrain.local.server import LocalServer  # optional dependency

        name = spec.split(":", 1)[1]
        server = (servers or {}).get(name)
        if server is None:
            server = LocalServer(name)
            await stack.enter_async_context(server)
            if servers is not None:
                servers[name] = server
        # The server's prompt cache stays on: a skill is a long shared prefix, and re-reading it
        # made every target call ~10x slower (measured: 3.5 s vs 0.35 s on the 0.5B). The
        # rare temperature-0 wobble it brings is absorbed by our response cache, which is
        # what makes replay exact; `extra_body: {cache_prompt: false}` turns it off.
        model = OpenAIModel(server.model_id, base_url=server.base_url, api_key="local",
                            timeout=cfg.timeout, concurrency=min(cfg.concurrency, 2),
                            extra_body=extra)
    else:
        name = spec.split(":", 1)[1] if spec.startswith("openai:") else spec
        base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY")
        if base_url is None and api_key is None:
            raise ConfigError(f"{role}.model {spec!r}: no API key; set OPENAI_API_KEY or "
                              f"{role}.api_key_env, or give {role}.base_url")
        model = OpenAIModel(name, base_url=base_url, api_key=api_key, timeout=cfg.timeout,
                            concurrency=cfg.concurrency, extra_body=extra)
    stack.push_async_callback(model.aclose)
    return model
