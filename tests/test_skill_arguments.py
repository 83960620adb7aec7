"""What a skill argument of the Python API means (package.as_skill, used by `evaluate`,
`aevaluate` and `compare`): a package folder's or .md file's path is loaded, anything else is
the skill's text."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted_package import FORMAT_FILE, FORMAT_MD, SKILL_MD, write_package

from skilltrain.package import SkillPackage, as_skill
from skilltrain.skill import Skill, SkillError

TEXT = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"


def test_a_folder_is_a_package_and_an_md_file_its_text(tmp_path, monkeypatch):
    write_package(tmp_path / "adder")
    (tmp_path / "one.md").write_text(TEXT)
    for given in (str(tmp_path / "adder"), tmp_path / "adder", str(tmp_path / "adder") + "/"):
        skill = as_skill(given)
        assert isinstance(skill, SkillPackage) and skill.text == SKILL_MD
        assert dict(skill.files)[FORMAT_FILE] == FORMAT_MD
    loaded = as_skill(str(tmp_path / "one.md"))
    assert type(loaded) is Skill and loaded.text == TEXT
    monkeypatch.chdir(tmp_path)  # a relative path too
    assert as_skill("one.md").text == TEXT and isinstance(as_skill("adder"), SkillPackage)


def test_text_stays_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a note\n")
    (tmp_path / "Add the two numbers.").mkdir()  # a folder named like a one-line skill...
    cases = ["Add the two numbers.\n",  # ...with a newline: text, whatever exists
             "missing/SKILL.md",  # names nothing on disk
             "notes.txt",  # a file, but not Markdown
             "x" * 5000,  # too long to be a path (the system refuses it, we do not crash)
             "bad\x00name.md", "", "   "]
    for text in cases:
        skill = as_skill(text)
        assert type(skill) is Skill and skill.text == text, repr(text[:40])
    given = Skill(TEXT)
    assert as_skill(given) is given


def test_a_named_package_that_is_broken_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkillError, match=r"empty: a skill package folder needs a SKILL.md"):
        as_skill(str(tmp_path / "empty"))
    with pytest.raises(SkillError, match="cannot read skill file"):
        as_skill(Path(tmp_path / "gone.md"))  # a Path is always a path: it must exist
