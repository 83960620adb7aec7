"""Checking a candidate skill package's scripts before any evaluation of it.

An optimizer that edits `scripts/check.py` can leave it broken, and an agent that runs a broken
script fails in ways the gate would only see after a full validation pass, if the validation
tasks run that script at all. So the files a candidate changes are checked first, in the
sandbox (sandbox.py: model-written code is never run outside it), and a candidate that fails is
refused with the error, which the optimizer then reads in its rejected buffer:

- Python files (`*.py`, or a `python` shebang): compiled, never run (`compile`, in the sandbox's
  Python with its isolation, so even a file that crashes the compiler harms nothing).
- Shell files (`*.sh`, `*.bash`, or a `sh`/`bash` shebang): `bash -n`, which parses and runs
  nothing (`Sandbox.run`; skipped, and said so, where bash is missing).
- The package's own tests, when the candidate changed code or tests and the package ships some:
  `tests/` (pytest's `test_*.py` / `*_test.py`) and `scripts/test*.py`, run with pytest under
  the Python sandbox (`run_python`: namespaces or the guard, no network, no subprocess). When
  the tests fail, they are run on the incumbent too: tests that failed before the edit are no
  evidence against it. Where pytest is not installed the tests are skipped, and said so.

A sandbox that cannot start is an infrastructure failure, not a verdict: the check is recorded
as not run and the candidate goes on to screening and the gate.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field

from skilltrain.files import write_tree
from skilltrain.harness.sandbox import Limits, RunResult, Sandbox, SandboxError, clip_middle
from skilltrain.skill import Skill

_SHEBANG_RE = re.compile(
    r"\A#!\s*(?:/usr/bin/env\s+)?(?:\S*/)?(python|bash|sh)\d*(?:\.\d+)?(?:\s|$)")
_TEST_RE = re.compile(r"(?:tests/(?:.*/)?(?:test_[^/]*|[^/]*_test)\.py|scripts/test[^/]*\.py)")
_NO_PYTEST = "SKILLTRAIN-NO-PYTEST"
_COMPILE = """
import json
for path in PATHS:
    try:
        with open(path, encoding="utf-8") as fh:
            compile(fh.read(), path, "exec", dont_inherit=True)
        print(json.dumps({"file": path, "ok": True}))
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        print(json.dumps({"file": path, "ok": False,
                          "error": f"{type(exc).__name__}: {exc.msg}{where}"}))
    except (ValueError, RecursionError, MemoryError) as exc:
        print(json.dumps({"file": path, "ok": False, "error": f"{type(exc).__name__}: {exc}"}))
"""
_PYTEST = f"""
import sys
try:
    import pytest
except ImportError:
    print("{_NO_PYTEST}")
    sys.exit(0)
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", ".", "-o", "addopts=",
                      *TARGETS]))
"""


def kind_of(path: str, content: str) -> str | None:
    """"python", "shell" or None: by extension, else by the shebang."""
    if path.endswith(".py"):
        return "python"
    if path.endswith((".sh", ".bash")):
        return "shell"
    m = _SHEBANG_RE.match(content)
    if m is None:
        return None
    return "python" if m.group(1) == "python" else "shell"


def package_tests(files: Mapping[str, str]) -> list[str]:
    """What pytest is given: `tests` when it holds test files, and each scripts/test*.py."""
    found = sorted(p for p in files if _TEST_RE.fullmatch(p))
    targets = ["tests"] if any(p.startswith("tests/") for p in found) else []
    return targets + [p for p in found if p.startswith("scripts/")]


@dataclass
class ScriptCheck:
    """One check of one file (or of the package's tests, `file` "tests")."""

    file: str
    kind: str  # "python_syntax", "shell_syntax" or "tests"
    ok: bool
    error: str = ""
    skipped: str = ""  # why the check did not run; such a check never refuses a candidate

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v != ""}


@dataclass
class PackageCheck:
    changed: list[str]
    checks: list[ScriptCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def error(self) -> str:
        """The first failure as the rejected buffer shows it."""
        bad = next((c for c in self.checks if not c.ok), None)
        if bad is None:
            return ""
        if bad.kind == "tests":
            return f"the package's tests failed: {bad.error}"
        return f"{bad.file}: {bad.kind.replace('_', ' ')} error: {bad.error}"

    def to_json(self) -> dict:
        return {"ok": self.ok, "changed": self.changed, "error": self.error or None,
                "checks": [c.to_json() for c in self.checks]}


def changed_files(base: Skill, candidate: Skill) -> list[str]:
    before, after = base.text_files(), candidate.text_files()
    return sorted(p for p, t in after.items() if before.get(p) != t)


def _install(box: Sandbox, skill: Skill) -> None:
    write_tree(box.workspace, {**skill.text_files(), **skill.resources()})


def _failure(result: RunResult, box: Sandbox, *, tail: bool = False) -> str:
    """What went wrong, with the sandbox's folder left out (it differs every run); a test run
    keeps its end, where pytest writes its summary."""
    if result.timed_out:
        return f"timed out after {box.limits.timeout_s:g} s"
    text = (result.stdout + "\n" + result.stderr).strip().replace(f"{box.workspace}/", "")
    if tail and len(text) > 600:
        text = "[...] " + text[-600:]
    return clip_middle(text, 1500) or f"exit code {result.returncode}"


def _compile(box: Sandbox, paths: list[str]) -> list[ScriptCheck]:
    result = box.run_python(f"PATHS = {json.dumps(paths)}\n{_COMPILE}")
    seen: dict[str, ScriptCheck] = {}
    for line in result.stdout.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("file") in paths:
            seen[row["file"]] = ScriptCheck(row["file"], "python_syntax", bool(row.get("ok")),
                                            str(row.get("error") or ""))
    why = _failure(result, box)
    return [seen.get(p) or ScriptCheck(p, "python_syntax", False, f"the compile check "
                                        f"stopped: {why}") for p in paths]


def _shell(box: Sandbox, path: str) -> ScriptCheck:
    if shutil.which("bash") is None:
        return ScriptCheck(path, "shell_syntax", True, skipped="bash is not installed")
    result = box.run(["bash", "-n", path])
    if result.ok:
        return ScriptCheck(path, "shell_syntax", True)
    return ScriptCheck(path, "shell_syntax", False, _failure(result, box))


def _tests(skill: Skill, targets: list[str], limits: Limits) -> ScriptCheck:
    with Sandbox(limits) as box:
        _install(box, skill)
        result = box.run_python(f"TARGETS = {json.dumps(targets)}\n{_PYTEST}")
        if _NO_PYTEST in result.stdout:
            return ScriptCheck("tests", "tests", True, skipped="pytest is not installed")
        if result.returncode in (0, 5) and not result.timed_out:  # 5: no test collected
            return ScriptCheck("tests", "tests", True)
        return ScriptCheck("tests", "tests", False, _failure(result, box, tail=True))


def _tests_against(base: Skill, candidate: Skill, targets: list[str], timeout_s: float
                   ) -> ScriptCheck:
    """The candidate's tests; a failure counts only when the incumbent's own tests pass."""
    limits = Limits(timeout_s=timeout_s, cpu_s=max(1, int(timeout_s)))
    tests = _tests(candidate, targets, limits)
    before = package_tests(base.text_files())
    if not tests.ok and before and not _tests(base, before, limits).ok:
        return ScriptCheck("tests", "tests", True, skipped="the tests fail on the incumbent "
                           "as well")
    return tests


def check_package(base: Skill, candidate: Skill, *, tests_timeout: float = 120.0
                  ) -> PackageCheck | None:
    """The checks of what `candidate` changed against `base`; None when it changed no code
    and no test (blocking: the caller runs it in a thread)."""
    files = candidate.text_files()
    changed = changed_files(base, candidate)
    code = {p: kind_of(p, files[p]) for p in changed if kind_of(p, files[p])}
    targets = package_tests(files)
    if not code and not any(p in changed for p in files if _TEST_RE.fullmatch(p)):
        return None
    report = PackageCheck(changed)
    limits = Limits(timeout_s=min(60.0, tests_timeout), cpu_s=60)
    try:
        with Sandbox(limits) as box:
            _install(box, candidate)
            python = [p for p, k in code.items() if k == "python"]
            if python:
                report.checks += _compile(box, python)
            report.checks += [_shell(box, p) for p, k in code.items() if k == "shell"]
        if targets and report.ok:
            report.checks.append(_tests_against(base, candidate, targets, tests_timeout))
    except (SandboxError, OSError) as exc:
        report.checks = [ScriptCheck("(sandbox)", "sandbox", True,
                                     skipped=f"the sandbox failed: {exc}"[:300])]
    return report
