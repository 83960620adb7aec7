"""Skill packages as the trainable state: identity, budgets, paths, new files, what each reader
is shown, and the run folder's version folders (skilltrain/package.py, package_view.py)."""

from __future__ import annotations

import hashlib
import os

import pytest
from scripted import GOOD_RULE
from scripted_package import (
    CHECK_PY,
    CHECK_SCRIPT,
    FORMAT_FILE,
    FORMAT_MD,
    LOGO,
    SKILL_MD,
    write_package,
)

from skilltrain.config_sections import PackageConfig
from skilltrain.harness.command import install_skill
from skilltrain.optim.patch import render_edits
from skilltrain.optim.schemas import analyst_schema, merge_schema
from skilltrain.package import SkillPackage, clean_path, load_package, load_skill
from skilltrain.package_view import referenced
from skilltrain.skill import Edit, EditStatus, Skill, SkillError
from skilltrain.store import RunStore


def package(tmp_path, **limits) -> SkillPackage:
    root = tmp_path / "adder"
    write_package(root)
    return load_package(root, PackageConfig(**limits))


def append(file: str, content: str) -> Edit:
    return Edit(op="append", file=file, content=content)


# -- identity ------------------------------------------------------------------------------
def test_hash_covers_every_path_and_content_and_nothing_else(tmp_path):
    pkg = package(tmp_path)
    assert pkg.text == SKILL_MD and dict(pkg.files) == {FORMAT_FILE: FORMAT_MD,
                                                        CHECK_SCRIPT: CHECK_PY}
    assert dict(pkg.binaries) == {"assets/logo.png": LOGO}
    same = load_package(tmp_path / "adder", PackageConfig(shown_chars=10))  # limits: not content
    assert same.hash == pkg.hash and same == pkg
    changed = {
        "SKILL.md": SkillPackage.make(SKILL_MD + "x\n", dict(pkg.files), dict(pkg.binaries)),
        "reference": SkillPackage.make(SKILL_MD, {**dict(pkg.files), FORMAT_FILE: "y\n"},
                                       dict(pkg.binaries)),
        "binary": SkillPackage.make(SKILL_MD, dict(pkg.files), {"assets/logo.png": b"\x00"}),
        "path": SkillPackage.make(SKILL_MD, {"references/other.md": FORMAT_MD,
                                             CHECK_SCRIPT: CHECK_PY}, dict(pkg.binaries)),
    }
    hashes = {name: p.hash for name, p in changed.items()}
    assert len(set(hashes.values())) == 4 and pkg.hash not in hashes.values()
    # a single file keeps the hash it always had
    assert Skill(SKILL_MD).hash == hashlib.sha256(SKILL_MD.encode()).hexdigest()[:16]
    assert pkg.file_hashes()[FORMAT_FILE] != changed["reference"].file_hashes()[FORMAT_FILE]
    assert pkg.file_hashes()[CHECK_SCRIPT] == changed["reference"].file_hashes()[CHECK_SCRIPT]


def test_loop_methods_carry_the_other_files(tmp_path):
    pkg = package(tmp_path)
    for new in (pkg.with_region("examples", "Input: 1 plus 2\nAnswer: 3"),
                pkg.with_body("# Adding\nAdd them.\n"),
                pkg.apply([append("SKILL.md", "Be brief.")])[0]):
        assert isinstance(new, SkillPackage) and new.files == pkg.files
        assert new.binaries == pkg.binaries and new.text != pkg.text
    assert pkg.tokens == (sum(len(t) for t in pkg.text_files().values()) + 3) // 4


# -- edits: which file, which paths ----------------------------------------------------------
def test_edits_land_in_the_file_they_name(tmp_path):
    pkg = package(tmp_path)
    new, results = pkg.apply([append(FORMAT_FILE, GOOD_RULE),
                              Edit(op="replace", file="./" + CHECK_SCRIPT,
                                   target="return text.strip().isdigit()",
                                   content="return text.strip().isdecimal()")])
    assert [r.status for r in results] == [EditStatus.APPLIED, EditStatus.APPLIED]
    files = new.text_files()
    assert GOOD_RULE in files[FORMAT_FILE] and GOOD_RULE not in files["SKILL.md"]
    assert "isdecimal" in files[CHECK_SCRIPT] and new.text == pkg.text
    diff = pkg.diff(new, from_name="v0000", to_name="v0001")
    assert "+++ v0001/references/format.md" in diff and "+++ v0001/scripts/check.py" in diff
    assert "SKILL.md" not in diff and pkg.diff(pkg) == ""


@pytest.mark.parametrize("path", ["../outside.md", "/etc/passwd", "references/../SKILL.md",
                                  ".hidden/x.md", "references\\x.md", "references//x.md",
                                  "a\0b"])
def test_paths_that_escape_or_hide_are_refused(tmp_path, path):
    pkg = package(tmp_path)
    new, [result] = pkg.apply([append(path, "x")])
    assert clean_path(path) is None
    assert result.status is EditStatus.BAD_PATH and new == pkg


def test_binary_files_and_single_file_skills_refuse_file_edits(tmp_path):
    pkg = package(tmp_path)
    new, [result] = pkg.apply([append("assets/logo.png", "x")])
    assert result.status is EditStatus.BINARY_FILE and new == pkg
    single = Skill(SKILL_MD)
    same, [result] = single.apply([append(FORMAT_FILE, GOOD_RULE)])
    assert result.status is EditStatus.UNKNOWN_FILE and same == single


def test_new_reference_files_follow_the_switch(tmp_path):
    pkg = package(tmp_path)
    new, [result] = pkg.apply([append("references/numbers.md", GOOD_RULE)])
    assert result.status is EditStatus.APPLIED
    assert new.text_files()["references/numbers.md"] == GOOD_RULE + "\n"
    assert "references/numbers.md" in referenced(new.text, ["references/numbers.md"])
    assert new.text.startswith(pkg.text.rstrip("\n"))  # linked at the end of SKILL.md
    linked, _ = pkg.apply([append("references/numbers.md", GOOD_RULE),
                           append("SKILL.md", "Numbers: see references/numbers.md.")])
    assert linked.text.count("references/numbers.md") == 1  # the optimizer linked it itself
    _, [outside] = pkg.apply([append("scripts/new.py", "print(1)")])
    _, [anchored] = pkg.apply([Edit(op="replace", file="references/new.md", target="a",
                                    content="b")])
    assert outside.status is EditStatus.BAD_PATH
    assert anchored.status is EditStatus.ANCHOR_MISSING
    off = package(tmp_path / "off", new_files=False)
    same, [result] = off.apply([append("references/numbers.md", GOOD_RULE)])
    assert result.status is EditStatus.NEW_FILE_OFF and same == off
    changed, [ok] = off.apply([append(FORMAT_FILE, GOOD_RULE)])  # existing files: still open
    assert ok.status is EditStatus.APPLIED and changed != off


# -- budgets -------------------------------------------------------------------------------
def test_per_file_and_total_budgets_refuse_an_edit(tmp_path):
    pkg = package(tmp_path, max_file_chars=200)
    new, [result] = pkg.apply([append(FORMAT_FILE, "word " * 60)])
    assert result.status is EditStatus.OVER_BUDGET and new == pkg
    fits, [ok] = pkg.apply([append(FORMAT_FILE, "Short.")])
    assert ok.status is EditStatus.APPLIED and fits != pkg
    total = sum(len(t) for t in pkg.text_files().values())
    tight = package(tmp_path / "tight", max_total_chars=total + 20)
    new, [result] = tight.apply([append(FORMAT_FILE, "x" * 40)])
    assert result.status is EditStatus.OVER_BUDGET and new == tight


def test_a_starting_package_over_its_budgets_is_refused_naming_the_file(tmp_path):
    root = tmp_path / "adder"
    write_package(root)
    (root / FORMAT_FILE).write_text("x" * 500)
    with pytest.raises(SkillError, match=r"references/format\.md: 500 characters, over "
                                         r"package\.max_file_chars \(200\)"):
        load_package(root, PackageConfig(max_file_chars=200))
    with pytest.raises(SkillError, match="max_binary_bytes"):
        load_package(root, PackageConfig(max_binary_bytes=4))
    (root / "SKILL.md").unlink()
    with pytest.raises(SkillError, match="needs a SKILL.md"):
        load_package(root)


def test_loading_skips_hidden_names_and_refuses_links(tmp_path):
    root = tmp_path / "adder"
    write_package(root)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / "scripts" / "__pycache__").mkdir()
    (root / "scripts" / "__pycache__" / "check.pyc").write_bytes(b"\0")
    pkg = load_skill(root)
    assert isinstance(pkg, SkillPackage)
    assert sorted(pkg.resources()) == ["assets/logo.png", FORMAT_FILE, CHECK_SCRIPT]
    assert isinstance(load_skill(root / "SKILL.md"), Skill)
    assert not load_skill(root / "SKILL.md").is_package
    os.symlink("/etc/hostname", root / "references" / "host.md")
    with pytest.raises(SkillError, match="symbolic link"):
        load_package(root)


def test_protected_region_markers_in_reference_files_are_checked(tmp_path):
    root = tmp_path / "adder"
    write_package(root)
    (root / FORMAT_FILE).write_text("# F\n<!-- skilltrain:begin keep -->\nx\n")
    with pytest.raises(SkillError, match=r"references/format\.md:2: .*never ends"):
        load_package(root)


# -- what the target and the optimizer see ---------------------------------------------------
def test_target_sees_skill_then_referenced_files_within_the_budget(tmp_path):
    pkg = package(tmp_path)
    shown = pkg.for_target()
    assert shown.startswith(pkg.body.rstrip("\n"))
    assert f'<skill_file path="{FORMAT_FILE}">\n{FORMAT_MD.rstrip()}\n</skill_file>' in shown
    assert f'<skill_file path="{CHECK_SCRIPT}">' in shown  # SKILL.md names the script too
    assert shown.index(FORMAT_FILE + '">') < shown.index(CHECK_SCRIPT + '">')  # link order
    assert "logo" not in shown
    big = SkillPackage.make(SKILL_MD, {FORMAT_FILE: "rule line\n" * 100, CHECK_SCRIPT: CHECK_PY},
                            limits=PackageConfig(shown_chars=400))
    view = big.target_view()
    assert view.cut == [FORMAT_FILE] and view.omitted == [CHECK_SCRIPT]
    assert "more characters of references/format.md not shown" in view.text
    assert "(Not shown, over the view budget: scripts/check.py)" in view.text
    assert view.text.count("rule line") <= 40
    assert "shown in part: references/format.md" in view.describe_cuts()
    unlinked = SkillPackage.make("# A\nAdd.\n", {FORMAT_FILE: FORMAT_MD})
    assert unlinked.for_target() == Skill("# A\nAdd.\n").for_target() == "# A\nAdd.\n"


def test_optimizer_sees_the_file_list_and_the_files(tmp_path):
    pkg = package(tmp_path)
    view = pkg.for_optimizer()
    for line in ("- SKILL.md (", f"- {FORMAT_FILE} (", f"- {CHECK_SCRIPT} (",
                 "- assets/logo.png (binary: carried along, not editable)"):
        assert line in view
    assert SKILL_MD.rstrip() in view and FORMAT_MD.rstrip() in view and "is_bare" in view
    small = load_package(tmp_path / "adder", PackageConfig(optimizer_chars=0))
    assert "(Not shown, over the view budget: references/format.md, scripts/check.py)" \
        in small.for_optimizer() and "is_bare" not in small.for_optimizer()
    assert Skill(SKILL_MD).for_optimizer() == SKILL_MD


def test_schemas_name_the_file_only_for_packages():
    plain = analyst_schema(("append", "insert_after", "replace", "delete"), False)
    files = analyst_schema(("append", "insert_after", "replace", "delete"), False, files=True)
    appends = analyst_schema(("append",), False, files=True)

    def edit_props(model) -> dict:
        schema = model.model_json_schema()
        ref = schema["properties"]["edits"]["items"]["$ref"].split("/")[-1]
        return schema["$defs"][ref]["properties"]

    assert "file" not in edit_props(plain) and plain.__name__ == "AnalystReply"
    assert "file" in edit_props(files) and "file" in edit_props(appends)
    reply = files.model_validate({"patterns": "p", "edits": [
        {"op": "append", "content": "c", "file": FORMAT_FILE}]})
    assert reply.edits[0].to_edit("failure").file == FORMAT_FILE
    assert "file" in edit_props(merge_schema(True))
    assert "file" not in edit_props(merge_schema(False))
    assert "file=references/format.md" in render_edits([append(FORMAT_FILE, "x")])
    assert "file=" not in render_edits([append("SKILL.md", "x")])
    assert "file" not in Edit(op="append", content="x").model_dump()  # single files unchanged


# -- where the package goes ------------------------------------------------------------------
def test_run_folder_keeps_versions_as_folders_and_best_skill_as_the_package(tmp_path):
    pkg = package(tmp_path)
    store = RunStore(tmp_path / "run")
    store.save_skill(0, pkg)
    better, _ = pkg.apply([append(FORMAT_FILE, GOOD_RULE)])
    store.save_skill(1, better)
    store.write_best(better)
    root = tmp_path / "run"
    assert (root / "skills/v0001" / FORMAT_FILE).read_text().endswith(GOOD_RULE + "\n")
    assert (root / "skills/v0000/assets/logo.png").read_bytes() == LOGO
    assert store.best_path == root / "best_skill" and not (root / "best_skill.md").exists()
    assert load_package(root / "best_skill").hash == better.hash
    start = load_package(tmp_path / "adder", PackageConfig(new_files=False))
    back = store.load_skill(1, like=start)
    assert isinstance(back, SkillPackage) and back.hash == better.hash
    assert back.limits.new_files is False  # the run's own switches, not the defaults
    store.write_best(pkg)  # swapped whole: no file of the later version is left behind
    assert load_package(root / "best_skill").hash == pkg.hash
    assert not [p for p in (root).iterdir() if p.name.startswith(".best_skill")]
    mode = (root / "best_skill" / FORMAT_FILE).stat().st_mode & 0o777
    assert mode == 0o600
    store.close()
    single = RunStore(tmp_path / "single")
    single.write_best(Skill(SKILL_MD))
    assert single.best_path == tmp_path / "single" / "best_skill.md"
    single.close()


def test_command_harness_installs_the_whole_folder(tmp_path):
    pkg = package(tmp_path)
    ws = tmp_path / "ws"
    skill_md = install_skill(ws, pkg, ".claude/skills", "task-skill")
    folder = skill_md.parent
    assert skill_md == ws / ".claude/skills/adder/SKILL.md" and skill_md.read_text() == SKILL_MD
    assert (folder / FORMAT_FILE).read_text() == FORMAT_MD
    assert (folder / CHECK_SCRIPT).read_text() == CHECK_PY
    assert (folder / "assets/logo.png").read_bytes() == LOGO
    installed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file())
    assert installed == ["SKILL.md", "assets/logo.png", FORMAT_FILE, CHECK_SCRIPT]


def test_a_merge_that_forgets_the_file_gets_it_back_from_its_sources(tmp_path):
    from skilltrain.optim.checks import CheckLog, EditChecker

    pkg = package(tmp_path)
    log = CheckLog()
    checker = EditChecker(pkg, log)
    inputs = [append(FORMAT_FILE, GOOD_RULE)]
    [merged] = checker.merged([append("SKILL.md", GOOD_RULE)], inputs)
    assert merged.file == FORMAT_FILE and log.counts["merge_file_restored"] == 1
    both = inputs + [append("SKILL.md", GOOD_RULE)]
    [kept] = checker.merged([append("SKILL.md", GOOD_RULE)], both)
    assert kept.file == "SKILL.md"  # sources disagree: left as written


def test_package_edits_may_not_copy_the_package_prompt_text(tmp_path):
    from skilltrain.optim.checks import CheckLog, EditChecker

    pkg = package(tmp_path)
    copied = append(FORMAT_FILE, "Every edit names the file it changes, by its path below.")
    log = CheckLog()
    assert EditChecker(pkg, log).edits([copied], max_support=3) == []
    assert log.counts["copied_prompt"] == 1
    single = EditChecker(Skill(SKILL_MD), CheckLog())  # a single file's checks are as they were
    assert single.edits([append("SKILL.md", copied.content)], max_support=3)
