"""A package's changed scripts are checked in the sandbox before the gate, and a package run
trains, refuses a broken script with its error in the rejected buffer, and resumes (in process,
with the FakeModel; tests/e2e/test_package_train.py does the same over HTTP)."""

from __future__ import annotations

import json
import shutil

import pytest
from scripted import GOOD_RULE, make_tasks
from scripted_package import (
    BROKEN_SCRIPT,
    CHECK_PY,
    CHECK_SCRIPT,
    FORMAT_FILE,
    REFUSED_MARK,
    PackageScript,
    write_package,
)

from skilltrain import Trainer
from skilltrain.harness.package_check import check_package, kind_of, package_tests
from skilltrain.models.fake import FakeModel
from skilltrain.package import SkillPackage, load_package
from skilltrain.run_files import RunFileError, check_resumable

TEST_OK = ("import sys\nsys.path.insert(0, 'scripts')\nimport check\n\n\n"
           "def test_bare():\n    assert check.is_bare('12') and not check.is_bare('a 12')\n")


def with_files(pkg: SkillPackage, **changes: str) -> SkillPackage:
    files = {**dict(pkg.files), **{k.replace("__", "/").replace("_DOT_", "."): v
                                   for k, v in changes.items()}}
    return SkillPackage.make(pkg.text, files, dict(pkg.binaries))


@pytest.fixture
def pkg(tmp_path) -> SkillPackage:
    write_package(tmp_path / "adder")
    base = load_package(tmp_path / "adder")
    return SkillPackage.make(base.text, {**dict(base.files), "scripts/run.sh": "echo ok\n",
                                         "tests/test_check.py": TEST_OK}, dict(base.binaries))


def test_what_counts_as_a_script_and_a_test():
    assert kind_of("scripts/a.py", "") == "python" and kind_of("run.sh", "") == "shell"
    assert kind_of("scripts/tool", "#!/usr/bin/env python3\nprint(1)\n") == "python"
    assert kind_of("scripts/tool", "#!/bin/bash\necho\n") == "shell"
    assert kind_of("scripts/tool", "#!/bin/zsh\necho\n") is None
    assert kind_of("references/a.md", "# A\n") is None
    assert package_tests({"tests/test_a.py": "", "tests/unit/b_test.py": "", "tests/data.py": "",
                         "scripts/test_all.py": "", "scripts/check.py": ""}) == \
        ["tests", "scripts/test_all.py"]
    assert package_tests({"scripts/check.py": ""}) == []


def test_a_syntax_error_is_named_with_its_line(pkg):
    report = check_package(pkg, with_files(pkg, scripts__check_DOT_py=CHECK_PY + BROKEN_SCRIPT))
    assert report is not None and not report.ok
    assert report.changed == [CHECK_SCRIPT]
    assert report.error.startswith("scripts/check.py: python syntax error: SyntaxError")
    assert f"(line {CHECK_PY.count(chr(10)) + 1})" in report.error  # the broken line
    assert [c.kind for c in report.checks] == ["python_syntax"]  # tests not run on a broken file


def test_a_shell_syntax_error_fails_bash_n(pkg):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed here")
    report = check_package(pkg, with_files(pkg, scripts__run_DOT_sh="if then fi (\n"))
    assert report is not None and not report.ok
    assert report.error.startswith("scripts/run.sh: shell syntax error:")
    assert "syntax error" in report.error and "/tmp/" not in report.error


def test_the_package_tests_run_and_judge_the_change(pkg):
    good = check_package(pkg, with_files(pkg, scripts__check_DOT_py=CHECK_PY.replace(
        "isdigit()", "isdecimal()")))
    assert good is not None and good.ok
    assert [(c.kind, c.ok) for c in good.checks] == [("python_syntax", True), ("tests", True)]
    wrong = check_package(pkg, with_files(pkg, scripts__check_DOT_py=CHECK_PY.replace(
        "return text.strip().isdigit()", "return True")))
    assert wrong is not None and not wrong.ok
    assert wrong.error.startswith("the package's tests failed:") and "1 failed" in wrong.error
    # tests that already failed on the incumbent are no evidence against the candidate
    failing = with_files(pkg, tests__test_check_DOT_py=TEST_OK.replace("not check", "check"))
    still = check_package(failing, with_files(failing, scripts__check_DOT_py=CHECK_PY + "\n"))
    assert still is not None and still.ok
    assert still.checks[-1].skipped == "the tests fail on the incumbent as well"


def test_a_change_to_text_only_is_not_checked(pkg):
    assert check_package(pkg, with_files(pkg, references__format_DOT_md="# F\nNew.\n")) is None
    assert check_package(pkg, pkg) is None


# -- the loop ---------------------------------------------------------------------------------
PAPER = {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2, "lr_min": 1,
         "proposals": 0, "screen": False, "demonstrations": False, "answer_form": False}


def config(tmp_path, out: str, **package) -> dict:
    if not (tmp_path / "adder").exists():
        write_package(tmp_path / "adder")
    return {"out": str(tmp_path / out), "scorer": "exact", "skill": str(tmp_path / "adder"),
            "gate": {"rule": "strict"}, "train": PAPER, "package": package}


def analyst_prompts(script: PackageScript) -> list[str]:
    return [r["messages"][-1]["content"] for r in script.requests
            if (r.get("response_format") or {}).get("json_schema", {}).get("name")
            == "AnalystReply" and "got wrong" in r["messages"][-1]["content"]]


def test_a_broken_script_is_refused_before_any_evaluation(tmp_path):
    script = PackageScript(analyst_plan=["breakscript", "good"])
    model = FakeModel(script.respond)
    trainer = Trainer(config(tmp_path, "run"), target=model, optimizer=model).fit(make_tasks(24))
    root = trainer.run_dir_
    assert trainer.summary_["steps"]["rejected"] == 1 and trainer.summary_["steps"]["accepted"] == 1
    row = json.loads((root / "state.json").read_text())["history"][0]
    assert row["outcome"] == "rejected" and "SyntaxError" in row["reason"]
    assert not (root / "steps/e01-s001/gate.json").exists()  # no gate evaluation spent
    assert not any("def is_bare(text:" in m["content"] for r in script.requests
                   for m in r["messages"] if m["role"] == "system")  # nor a rollout
    checks = json.loads((root / "steps/e01-s001/scripts.json").read_text())["candidates"]
    assert checks[0]["ok"] is False and checks[0]["changed"] == [CHECK_SCRIPT]
    prompts = analyst_prompts(script)
    assert REFUSED_MARK not in prompts[0] and REFUSED_MARK in prompts[1]
    assert "SyntaxError" in prompts[1] and "scripts/check.py" in prompts[1]
    best = load_package(root / "best_skill")
    assert GOOD_RULE in best.text_files()[FORMAT_FILE]
    assert best.text_files()[CHECK_SCRIPT] == CHECK_PY  # the broken script never shipped


def test_with_script_checks_off_the_broken_script_meets_the_gate(tmp_path):
    script = PackageScript(analyst_plan=["breakscript", "none"])
    model = FakeModel(script.respond)
    trainer = Trainer(config(tmp_path, "run", check_scripts=False), target=model,
                      optimizer=model).fit(make_tasks(24))
    assert (trainer.run_dir_ / "steps/e01-s001/gate.json").is_file()
    assert not (trainer.run_dir_ / "steps/e01-s001/scripts.json").exists()


def test_a_new_reference_file_trains_and_ships_linked(tmp_path):
    script = PackageScript(analyst_plan=["newfile"])
    model = FakeModel(script.respond)
    trainer = Trainer(config(tmp_path, "run"), target=model, optimizer=model).fit(make_tasks(24))
    best = load_package(trainer.run_dir_ / "best_skill")  # not followed by the target: rejected
    assert "references/numbers.md" not in best.text_files()
    rejected = json.loads((trainer.run_dir_ / "state.json").read_text())["rejected"]
    assert rejected[0]["edits"][0]["file"] == "references/numbers.md"
    off = PackageScript(analyst_plan=["newfile"])
    model = FakeModel(off.respond)
    refused = Trainer(config(tmp_path, "off", new_files=False), target=model,
                      optimizer=model).fit(make_tasks(24))
    selection = json.loads((refused.run_dir_ / "steps/e01-s001/selection.json").read_text())
    assert [e["status"] for e in selection["edits"]] == ["new_file_off"]


class Killed(Exception):
    pass


def test_a_package_run_resumes_where_it_stopped(tmp_path):
    def kill(record: dict) -> None:
        if record.get("event") == "step_start" and record.get("step") == 2:
            raise Killed

    tasks = make_tasks(24)
    model = FakeModel(PackageScript(analyst_plan=["auto"]).respond)
    with pytest.raises(Killed):
        Trainer(config(tmp_path, "run"), target=model, optimizer=model,
                callbacks=[kill]).fit(tasks)
    state = json.loads((tmp_path / "run/state.json").read_text())
    assert state["global_step"] == 1 and "SyntaxError" in state["rejected"][0]["reason"]
    check_resumable(tmp_path / "run")  # what `skilltrain resume` checks first: version folders
    moved = tmp_path / "run/skills/v0000"
    moved.rename(tmp_path / "v0000")
    with pytest.raises(RunFileError, match="incumbent"):
        check_resumable(tmp_path / "run")
    (tmp_path / "v0000").rename(moved)
    model = FakeModel(PackageScript(analyst_plan=["auto"]).respond)
    resumed = Trainer(config(tmp_path, "run"), target=model, optimizer=model).fit(tasks)
    model = FakeModel(PackageScript(analyst_plan=["auto"]).respond)
    reference = Trainer(config(tmp_path, "ref"), target=model, optimizer=model).fit(tasks)
    events = [json.loads(line)["event"] for line in
              (tmp_path / "run/events.jsonl").read_text().splitlines()]
    assert "resume" in events
    assert resumed.summary_["steps"] == reference.summary_["steps"]
    assert resumed.summary_["steps"]["accepted"] == 1
    assert isinstance(resumed.best_skill_, SkillPackage)
    assert resumed.best_skill_.hash == reference.best_skill_.hash
    assert load_package(tmp_path / "run/best_skill").hash == reference.best_skill_.hash
    versions = json.loads((tmp_path / "run/state.json").read_text())["versions"]
    assert versions[-1]["files"][FORMAT_FILE] != versions[0]["files"][FORMAT_FILE]
    assert versions[-1]["files"][CHECK_SCRIPT] == versions[0]["files"][CHECK_SCRIPT]
