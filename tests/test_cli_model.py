"""An agent CLI as a model (models/cli_model.py, models/cli_formats.py): the prompt a request
becomes, the JSON taken out of a reply, the real CLIs' outputs read back (captured from Claude
Code 2.1.197 and Codex 0.171.0 in tests/agents/observed_cli_output.json), failures mapped to
kinds, the deadline that kills the process group, the environment allow-list, and the model
under RoleClient (validation, invalid_output, the response cache)."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from procs import wait_marker_gone
from pydantic import BaseModel
from scripted import GOOD_RULE

from skilltrain.config import ConfigError, ModelConfig
from skilltrain.models.base import ModelError
from skilltrain.models.cache import ResponseCache
from skilltrain.models.cli_formats import (
    CONVERSATION_LEAD,
    SCHEMA_LEAD,
    first_json_object,
    flatten,
    read_claude,
    read_codex,
    read_plain,
)
from skilltrain.models.cli_model import CliModel, parse_spec
from skilltrain.models.client import CallSettings, RoleClient
from skilltrain.models.meter import Meter
from skilltrain.models.prices import rates
from skilltrain.models.registry import open_model

AGENTS = Path(__file__).resolve().parent / "agents"
OBSERVED = json.loads((AGENTS / "observed_cli_output.json").read_text(encoding="utf-8"))
FAKES = {"claude": str(AGENTS / "fake_claude.py"), "codex": str(AGENTS / "fake_codex.py")}


class Verdict(BaseModel):
    answer: int
    why: str


def fmt(schema: type[BaseModel]) -> dict:
    return {"type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()}}


def fake(preset: str, *extra: str, **kw) -> CliModel:
    return CliModel(f"cmd:{preset}", program=[sys.executable, FAKES[preset], *extra], **kw)


def logged(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- the prompt ------------------------------------------------------------------------------

def test_one_user_message_is_the_prompt_and_system_messages_are_the_system_text():
    p = flatten([{"role": "system", "content": "Skill A"}, {"role": "system", "content": "B"},
                 {"role": "user", "content": "What is 2 plus 3?"}])
    assert p.system == "Skill A\n\nB" and p.prompt == "What is 2 plus 3?"
    assert p.as_one() == "<system>\nSkill A\n\nB\n</system>\n\nWhat is 2 plus 3?"
    assert flatten([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]).as_one() == "hi"


def test_a_conversation_is_tagged_turns_and_a_schema_is_asked_for_at_the_end():
    p = flatten([{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                 {"role": "user", "content": "Q2"}], fmt(Verdict))
    head, _, tail = p.prompt.partition("\n\n" + SCHEMA_LEAD)
    assert head == (f"{CONVERSATION_LEAD}\n\n<user>\nQ1\n</user>\n\n<assistant>\nA1\n"
                    "</assistant>\n\n<user>\nQ2\n</user>")
    name, _, schema = tail.strip().partition(":\n")
    assert name == "JSON Schema Verdict"
    assert json.loads(schema) == Verdict.model_json_schema()


def test_the_first_json_object_is_taken_out_of_prose_and_fences():
    assert first_json_object('Sure!\n```json\n{"a": {"b": [1, "}"]}}\n```\nDone.') == \
        '{"a": {"b": [1, "}"]}}'
    assert first_json_object('[1, 2] then {"x": 1} and {"y": 2}') == '{"x": 1}'
    assert first_json_object("{not json} but {\"ok\": true}") == '{"ok": true}'
    assert first_json_object("no object here [1]") is None


# -- the real CLIs' outputs, read back -------------------------------------------------------

def observed(key: str) -> tuple[str, str, int]:
    return OBSERVED[key]["stdout"], "", OBSERVED[key]["returncode"]


def test_claude_codes_real_json_result_gives_text_usage_and_finish():
    done = read_claude(*observed("claude_ok"))
    assert done.text == "Hello from mock. ANSWER: 42" and done.finish_reason == "stop"
    # Anthropic's input_tokens leave the cache out: the prompt is all three
    u = done.usage
    assert (u.prompt_tokens, u.completion_tokens, u.calls) == (130, 7, 1)
    assert (u.cache_read_tokens, u.cache_write_tokens) == (30, 0)


def test_codex_real_events_give_the_agent_message_not_the_warning_item():
    done = read_codex(*observed("codex_ok"))
    assert done.text == "Hello from mock. ANSWER: 42"
    u = done.usage  # OpenAI's input_tokens include the cached ones
    assert (u.prompt_tokens, u.completion_tokens, u.cache_read_tokens, u.calls) == (100, 7, 30, 1)


@pytest.mark.parametrize(("key", "kind"), [
    ("claude_500", "server_error"), ("claude_429", "rate_limit"), ("claude_401", "fatal"),
    ("claude_400", "http_error"), ("claude_refused", "connection"), ("claude_no_key", "fatal"),
    ("codex_500", "server_error"), ("codex_429", "rate_limit"), ("codex_401", "fatal"),
])
def test_real_failures_map_to_kinds_that_say_whether_a_retry_helps(key, kind):
    reader = read_claude if key.startswith("claude") else read_codex
    with pytest.raises(ModelError) as err:
        reader(*observed(key))
    assert err.value.kind == kind
    assert err.value.message.split(":", 1)[0] == key.split("_")[0]


def test_a_reply_cut_at_the_token_limit_is_truncated_not_retried():
    cut = ("API Error: Claude's response exceeded the 256 output token maximum. To configure "
           "this behavior, set the CLAUDE_CODE_MAX_OUTPUT_TOKENS environment variable.")
    real = json.loads(OBSERVED["claude_500"]["stdout"])  # the error result, with that text
    with pytest.raises(ModelError) as err:
        read_claude(json.dumps({**real, "api_error_status": None, "result": cut}), "", 1)
    assert err.value.kind == "truncated" and not err.value.retryable


def test_output_that_is_not_the_format_is_a_bad_response_and_a_crash_names_stderr():
    with pytest.raises(ModelError) as err:
        read_claude("Welcome!\n", "", 0)
    assert err.value.kind == "bad_response" and "Welcome!" in err.value.message
    with pytest.raises(ModelError) as err:
        read_claude("", "Traceback ...\nTypeError: boom\n", 3)
    assert "status 3" in err.value.message and err.value.message.endswith("TypeError: boom")
    with pytest.raises(ModelError) as err:
        read_plain("", "warming up\nfatal: no model\n", 2)
    assert err.value.kind == "server_error" and err.value.message.endswith("fatal: no model")
    with pytest.raises(ModelError) as err:
        read_plain("  \n", "", 0)
    assert err.value.kind == "empty_reply"


def test_the_fakes_print_what_the_real_clis_print():
    real = json.loads(OBSERVED["claude_ok"]["stdout"])
    ours = asyncio.run(_raw_fake_claude())
    assert set(ours) == set(real) and set(ours["usage"]) == set(real["usage"])
    real_types = [json.loads(ln)["type"] for ln in OBSERVED["codex_ok"]["stdout"].splitlines()]
    ours_types = [e["type"] for e in asyncio.run(_raw_fake_codex())]
    assert ours_types == real_types


async def _raw_fake_claude() -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, FAKES["claude"], "-p", "--output-format", "json", "What is 1 plus 4?",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return json.loads(out)


async def _raw_fake_codex() -> list[dict]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, FAKES["codex"], "exec", "--json", "-", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(b"What is 1 plus 4?")
    return [json.loads(line) for line in out.decode().splitlines()]


# -- the model -------------------------------------------------------------------------------

def test_model_strings_parse_to_presets_endpoints_and_commands():
    assert parse_spec("cmd:claude").preset == "claude"
    assert parse_spec("cmd:codex@local:0.5b").endpoint == "local:0.5b"
    spec = parse_spec('cmd:"python agent.py --fast {prompt}"')
    assert (spec.preset, spec.command) == ("generic", "python agent.py --fast {prompt}")
    assert parse_spec("cmd:claude-wrapper --x").preset == "generic"
    for bad in ("cmd:", 'cmd:"unclosed'):
        with pytest.raises(ValueError):
            parse_spec(bad)


@pytest.mark.parametrize("preset", ["claude", "codex"])
def test_a_preset_answers_through_its_cli_in_a_fresh_folder_with_a_minimal_env(
        preset, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-caller-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-caller-secret")
    monkeypatch.setenv("SOME_TOKEN", "t0ken")
    log = tmp_path / "calls.jsonl"
    model = fake(preset, "--log", str(log), base_url="http://127.0.0.1:1/v1", model="m1")
    request = {"messages": [{"role": "system", "content": GOOD_RULE},
                            {"role": "user", "content": "What is 2 plus 5?"}], "max_tokens": 64}
    first = asyncio.run(model.complete(request))
    second = asyncio.run(model.complete(request))
    assert first.text == second.text == "7"  # the scripted target follows the rule it was given
    assert first.usage.calls == 1 and first.usage.prompt_tokens > 0
    assert first.usage.cache_read_tokens > 0  # the fakes report the system text as cached
    calls = logged(log)
    assert [c["system"] for c in calls] == [GOOD_RULE] * 2
    assert calls[0]["cwd"] != calls[1]["cwd"]  # a fresh scratch folder per call
    assert not Path(calls[0]["cwd"]).exists()  # and it is removed afterwards
    assert calls[0]["home"] == calls[0]["cwd"]
    for name in ("OPENAI_API_KEY", "SOME_TOKEN", "ANTHROPIC_AUTH_TOKEN"):
        assert name not in calls[0]["env"]
    assert "secret" not in json.dumps(calls[0]["env"])  # nor the caller's Anthropic key
    if preset == "claude":  # another endpoint: the caller's own key stays out of its env
        assert "--bare" in calls[0]["argv"] and calls[0]["argv"][-2:] == ["--model", "m1"]
        assert "CLAUDE_CODE_MAX_OUTPUT_TOKENS" in calls[0]["env"]
    else:
        assert "CODEX_HOME" in calls[0]["env"] and "-m" in calls[0]["argv"]


def test_a_generic_command_takes_the_prompt_on_stdin_or_in_its_words(tmp_path):
    echo = CliModel('cmd:"python -c \'import sys; print(sys.stdin.read().upper())\'"')
    done = asyncio.run(echo.complete({"messages": [{"role": "system", "content": "be brief"},
                                                   {"role": "user", "content": "hi"}]}))
    assert done.text == "<SYSTEM>\nBE BRIEF\n</SYSTEM>\n\nHI"
    assert done.usage.calls == 1 and done.usage.prompt_tokens == 0  # it reports no usage
    words = CliModel('cmd:python -c "import sys; print(sys.argv[1][::-1])" {prompt}')
    assert asyncio.run(words.complete({"messages": [{"role": "user", "content": "abc"}]})
                       ).text == "cba"
    filed = CliModel('cmd:python -c "import sys; print(open(sys.argv[1]).read() * 2)" '
                     "{prompt_file}")
    assert asyncio.run(filed.complete({"messages": [{"role": "user", "content": "ab"}]})
                       ).text == "abab"
    failing = CliModel('cmd:python -c "import sys; sys.exit(\'model not loaded\')"')
    with pytest.raises(ModelError) as err:
        asyncio.run(failing.complete({"messages": [{"role": "user", "content": "x"}]}))
    assert err.value.kind == "server_error" and err.value.message.endswith("model not loaded")


def test_the_deadline_kills_the_whole_process_group(tmp_path):
    model = fake("claude", "--sleep", "37.125", timeout=1.5)
    with pytest.raises(ModelError) as err:
        asyncio.run(model.complete({"messages": [{"role": "user", "content": "What is 1+1?"}]}))
    assert err.value.kind == "timeout" and "1.5s deadline" in err.value.message
    assert wait_marker_gone("time.sleep(37.125)")  # the CLI's own child died with it


def test_a_missing_program_or_tools_in_the_request_are_refused():
    with pytest.raises(ValueError, match="not found on PATH"):
        CliModel("cmd:claude", program=["no-such-claude-binary"])
    with pytest.raises(ModelError) as err:
        asyncio.run(fake("claude").complete({"messages": [{"role": "user", "content": "x"}],
                                             "tools": [{"type": "function"}]}))
    assert err.value.kind == "fatal" and "text protocol" in err.value.message


# -- under RoleClient: validation, failures counted, the cache -------------------------------

def client(model: CliModel, cache: ResponseCache | None = None) -> tuple[RoleClient, Meter]:
    meter = Meter()
    return RoleClient(model, "optimizer", meter, cache=cache,
                      settings=CallSettings(retries=0, backoff_s=0)), meter


def test_a_structured_reply_in_prose_is_validated_and_a_non_json_one_is_invalid_output(tmp_path):
    chatty = fake("codex", "--reply", 'Here you go:\n```json\n{"answer": 4, "why": "2+2"}\n```')
    role, _ = client(chatty)
    reply = asyncio.run(role.structured([{"role": "user", "content": "2+2?"}], Verdict,
                                        stage="analyse"))
    assert reply == Verdict(answer=4, why="2+2")
    log = tmp_path / "calls.jsonl"
    prose = fake("claude", "--log", str(log), "--reply", "I think the answer is four.")
    role, meter = client(prose)
    with pytest.raises(ModelError) as err:
        asyncio.run(role.structured([{"role": "user", "content": "2+2?"}], Verdict,
                                    stage="analyse"))
    assert err.value.kind == "invalid_output"
    assert meter.failures["invalid_output"] == 1
    calls = logged(log)
    assert [c["schema"] for c in calls] == ["Verdict", "Verdict"]  # one corrective retry
    assert calls[1]["prompt"].startswith(CONVERSATION_LEAD)


def test_the_response_cache_serves_a_repeated_request_without_running_the_cli(tmp_path):
    log = tmp_path / "calls.jsonl"
    cache = ResponseCache(tmp_path / "cache.sqlite")
    role, meter = client(fake("claude", "--log", str(log)), cache)
    ask = [{"role": "system", "content": GOOD_RULE},
           {"role": "user", "content": "What is 4 plus 4?"}]
    first = asyncio.run(role.complete(ask, stage="rollout"))
    again = asyncio.run(role.complete(ask, stage="rollout"))
    assert first.text == again.text == "8" and again.cached
    assert len(logged(log)) == 1 and meter.cache_hits == 1
    cache.close()


def test_the_registry_opens_cmd_models_and_refuses_bad_options(tmp_path, monkeypatch):
    async def opened(**cfg) -> object:
        async with AsyncExitStack() as stack:
            return await open_model(ModelConfig(**cfg), stack, "optimizer")

    model = asyncio.run(opened(model="cmd:claude", base_url="http://127.0.0.1:1",
                               extra_body={"program": [sys.executable, FAKES["claude"]],
                                           "model": "claude-sonnet-4-5", "args": "--verbose"}))
    assert model.name == "cmd:claude/claude-sonnet-4-5" and model.args == ["--verbose"]
    # the CLI's model names its price: its tokens (cache reads too) are costed like any call
    assert rates(model.name) == rates("claude-sonnet-4-5") and rates(model.name)[0] > 0
    with pytest.raises(ConfigError, match=r"optimizer.extra_body: temperature is not an option"):
        asyncio.run(opened(model="cmd:claude", extra_body={"temperature": 0.2}))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"optimizer.model 'cmd:codex': program 'codex' not"):
        asyncio.run(opened(model="cmd:codex"))
    with pytest.raises(ConfigError, match="takes no base_url"):
        asyncio.run(opened(model="cmd:python agent.py", base_url="http://127.0.0.1:1"))
