"""The optional built-in workspace tools `glob` and `grep`, and choosing built-ins by config."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import get_args

import pytest

from skilltrain.config import ConfigError, parse_config
from skilltrain.config_sections import AgentConfig, BuiltinTool
from skilltrain.files import write_tree
from skilltrain.harness import make_harness
from skilltrain.harness.sandbox import Limits, Sandbox
from skilltrain.harness.tools import (
    ALL_BUILTIN_TOOLS,
    BUILTIN_TOOLS,
    MAX_GLOB_ROWS,
    MAX_GREP_MATCHES,
    ToolError,
    workspace_tools,
)


@pytest.fixture
def box():
    sandbox = Sandbox(Limits())
    yield sandbox
    sandbox.close()


def tools(sandbox: Sandbox, output_chars: int = 100_000) -> dict:
    made = workspace_tools(sandbox, output_chars=output_chars, names=("glob", "grep"))
    return {t.name: t.fn for t in made}


def write(root: Path, rel: str, data: str | bytes) -> Path:
    write_tree(root, {rel: data})
    return root / rel


def test_glob_lists_matching_files_with_sizes_and_hides_tmp(box):
    ws = box.workspace
    write(ws, "documents/a.md", "alpha\n")
    write(ws, "documents/deep/b.md", "beta beta\n")
    write(ws, "documents/c.txt", "gamma\n")
    write(ws, ".tmp/hidden.md", "scratch\n")
    glob = tools(box)["glob"]
    rows = glob("documents/**/*.md").splitlines()
    assert rows == ["documents/a.md\t6", "documents/deep/b.md\t10"]
    assert glob("**/*.md").count(".tmp") == 0  # the sandbox's TMPDIR is not the model's
    assert "no files match" in glob("*.csv")


def test_glob_is_capped_and_says_how_many_were_left_out(box):
    for i in range(MAX_GLOB_ROWS + 7):
        write(box.workspace, f"many/f{i:04d}.txt", "x")
    out = tools(box)["glob"]("many/*.txt")
    assert len([r for r in out.splitlines() if r.startswith("many/")]) == MAX_GLOB_ROWS
    assert "7 more files not shown" in out
    clipped = tools(box, output_chars=300)["glob"]("many/*.txt")
    assert len(clipped) < 400 and "characters cut" in clipped


def test_glob_and_grep_never_leave_the_workspace(box, tmp_path):
    outside = write(tmp_path, "secret.txt", "password=hunter2\n")
    fns = tools(box)
    for pattern in ("../*", "/etc/*", str(tmp_path / "*"), ""):
        with pytest.raises(ToolError, match="relative to the working folder"):
            fns["glob"](pattern)
    with pytest.raises(ToolError, match="outside the workspace"):
        fns["grep"]("password", "..")
    os.symlink(outside, box.workspace / "link.txt")  # a link out is neither listed nor read
    assert "link.txt" not in fns["glob"]("*")
    assert "hunter2" not in fns["grep"]("password")


def test_grep_rows_case_and_binary_files(box):
    ws = box.workspace
    write(ws, "documents/r1.md", "Intro\nRevenue 2023: 412 million\nCosts\n")
    write(ws, "documents/r2.md", "revenue 2022: 399 million\n")
    write(ws, "documents/scan.bin", b"\x00\x01Revenue 2023 in binary\x00")
    grep = tools(box)["grep"]
    out = grep(r"revenue \d{4}", "documents")
    assert out.splitlines()[:2] == ["documents/r1.md:2: Revenue 2023: 412 million",
                                    "documents/r2.md:1: revenue 2022: 399 million"]
    assert "1 binary or very large file(s) skipped" in out and "in binary" not in out
    exact = grep("Revenue", "documents/r2.md", ignore_case=False)
    assert exact.startswith("no lines match") and "399" not in exact
    with pytest.raises(ToolError, match="no such file or folder"):
        grep("x", "nowhere")


def test_grep_clips_lines_and_caps_matches(box):
    write(box.workspace, "long.txt", "needle " + "y" * 1000 + "\n")
    write(box.workspace, "many.txt", "".join(f"needle {i}\n" for i in range(MAX_GREP_MATCHES + 5)))
    grep = tools(box)["grep"]
    long_row = grep("needle", "long.txt")
    assert len(long_row) < 300 and long_row.endswith("[...]")
    out = grep("needle", "many.txt")
    assert len([r for r in out.splitlines() if r.startswith("many.txt:")]) == MAX_GREP_MATCHES
    assert "5 more matching lines not shown" in out


def test_an_invalid_regex_is_a_tool_error_naming_the_problem(box):
    with pytest.raises(ToolError, match=r"invalid regular expression '\(unclosed'.*missing \)"):
        tools(box)["grep"]("(unclosed")


def test_grep_through_the_tool_call_path_reports_bad_arguments(box):
    grep = next(t for t in workspace_tools(box, names=("grep",)))
    with pytest.raises(ToolError, match="invalid regular expression"):
        asyncio.run(grep.call('{"pattern": "[a-"}'))
    with pytest.raises(ToolError, match="invalid arguments for grep"):
        asyncio.run(grep.call('{"pattern": "a", "ignore_case": "maybe"}'))


def test_the_default_set_is_unchanged_and_the_config_names_every_builtin(box):
    assert BUILTIN_TOOLS == ("python", "read_file", "list_files", "write_file")
    assert set(get_args(BuiltinTool)) == set(ALL_BUILTIN_TOOLS)  # config and tools agree
    assert [t.name for t in workspace_tools(box)] == list(BUILTIN_TOOLS)
    with pytest.raises(ValueError, match="known: python, read_file"):
        workspace_tools(box, names=("find",))


def test_agent_builtin_config_picks_the_tools_and_refuses_unknown_names():
    assert AgentConfig().builtin is None
    harness = make_harness("agent", agent={"builtin": ["glob", "grep", "read_file"]})
    assert harness.builtin == ("glob", "grep", "read_file")
    assert make_harness("agent").builtin == BUILTIN_TOOLS  # null: the default set
    with pytest.raises(ConfigError, match=r"agent\.builtin\.1: Input should be 'python', "
                       r"'read_file', 'list_files', 'write_file', 'glob' or 'grep'"):
        parse_config({"agent": {"builtin": ["grep", "find"]}}, "run.yaml")


def test_a_runaway_regular_expression_meets_the_sandbox_limits_not_our_thread():
    """grep runs in the sandbox's child process: a pattern that backtracks for ever ends at
    the wall-clock limit as a tool error the model reads."""
    sandbox = Sandbox(Limits(timeout_s=1.0, cpu_s=1))
    try:
        write(sandbox.workspace, "slow.txt", "a" * 40 + "b\n")
        started = time.monotonic()
        with pytest.raises(ToolError, match="grep stopped"):
            tools(sandbox)["grep"]("(a+)+$")
        assert time.monotonic() - started < 10
    finally:
        sandbox.close()
