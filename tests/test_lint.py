"""`skilltrain lint`: each rule on hand-written skills, firing and not firing, with its line.

Every rule is tried on a skill that breaks it and on the same skill mended, so a rule that
never fires and a rule that always fires both fail here; line numbers are counted by hand from
the text written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from skilltrain.cli import app
from skilltrain.lint import Finding, errors, links, lint_path, lint_text
from skilltrain.suites import list_suites

GOOD = "---\nname: add-numbers\ndescription: Adds two numbers.\n---\n\n# Adding\nAdd them.\n"


def rules(findings: list[Finding]) -> list[tuple[int, str, str]]:
    return [(f.line, f.rule, f.severity) for f in findings]


def package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def front(*lines: str, body: str = "# Body\nDo it.\n") -> str:
    return "---\n" + "".join(line + "\n" for line in lines) + "---\n" + body


# -- front matter fields --------------------------------------------------------------------

def test_a_complete_skill_has_no_findings() -> None:
    assert lint_text(GOOD, "SKILL.md") == []
    full = front("name: pdf-tools", "description: Fills PDF forms. Use for PDFs.",
                 "license: Apache-2.0", "compatibility: Needs poppler", "metadata:",
                 "  author: me", '  version: "1.0"', "allowed-tools: Bash(git:*) Read")
    assert lint_text(full, "SKILL.md") == []
    listed = front("name: a", "description: d", "allowed-tools:", "  - Read", "  - Bash")
    assert lint_text(listed, "SKILL.md") == []


@pytest.mark.parametrize("name, why", [
    ("a--b", "must not contain '--'"), ("my--skill", "must not contain '--'"),
    ("-a", "must not start or end with '-'"), ("a-", "must not start or end with '-'"),
    ("PDF-Tools", "only lowercase"), ("pdf_tools", "only lowercase"),
    ("a" * 65, "65 characters, at most 64"), ("'123'", None),
])
def test_name_rules_fire_on_the_name_line(name: str, why: str | None) -> None:
    found = lint_text(front("description: d", f"name: {name}"), "SKILL.md")
    if why is None:  # digits only is a valid name
        assert found == []
        return
    assert rules(found) == [(3, "name-format", "error")]
    assert why in found[0].message
    assert lint_text(front("description: d", "name: " + "a" * 64), "SKILL.md") == []


def test_a_name_that_is_not_a_string_is_an_error() -> None:
    found = lint_text(front("name: [a, b]", "description: d"), "S.md")
    assert rules(found) == [(2, "name-format", "error")]


def test_description_rules() -> None:
    at_limit = front("name: a", "description: " + "d" * 1024)
    assert lint_text(at_limit, "S.md") == []
    long = lint_text(front("name: a", "description: " + "d" * 1025), "S.md")
    assert rules(long) == [(3, "description-format", "error")]
    assert "1025 characters; at most 1024" in long[0].message
    for empty in ('""', "' '", "[x]", "42"):
        found = lint_text(front("name: a", f"description: {empty}"), "S.md")
        assert rules(found) == [(3, "description-format", "error")], empty


@pytest.mark.parametrize("field, bad, good, rule", [
    ("compatibility", "c" * 501, "c" * 500, "compatibility-format"),
    ("compatibility", "''", "Needs git", "compatibility-format"),
    ("license", "[MIT]", "MIT", "license-format"),
    ("metadata", "{version: 1.0}", "{version: '1.0'}", "metadata-format"),
    ("metadata", "just-a-string", "{}", "metadata-format"),
    ("allowed-tools", "{Read: yes}", "Read Bash", "allowed-tools-format"),
    ("allowed-tools", "[Read, 3]", "[Read, Bash]", "allowed-tools-format"),
])
def test_optional_field_types(field: str, bad: str, good: str, rule: str) -> None:
    found = lint_text(front("name: a", "description: d", f"{field}: {bad}"), "S.md")
    assert rules(found) == [(4, rule, "error")]
    assert lint_text(front("name: a", "description: d", f"{field}: {good}"), "S.md") == []


def test_an_unknown_field_is_a_warning_on_its_line() -> None:
    found = lint_text(front("name: a", "description: d", "version: 2", "triggers: [x]"), "S.md")
    assert rules(found) == [(4, "unknown-field", "warning"), (5, "unknown-field", "warning")]
    assert "'version'" in found[0].message and errors(found) == []


def test_broken_front_matter_is_an_error_with_the_yaml_line() -> None:
    found = lint_text("---\nname: a\ndescription: [unclosed\n---\nBody\n", "S.md")
    assert [(f.rule, f.severity) for f in found] == [("front-matter", "error")]
    assert found[0].line in (3, 4) and "not valid YAML" in found[0].message
    listed = lint_text("---\n- a\n- b\n---\nBody\n", "S.md")
    assert rules(listed) == [(2, "front-matter", "error")]


def test_a_plain_markdown_file_only_gets_warnings() -> None:
    """A bare Markdown skill trains as it always did: what it lacks is a warning only."""
    plain = lint_text("# Rules\nAnswer briefly.\n", "notes.md")
    assert rules(plain) == [(1, "front-matter", "warning")]
    unclosed = lint_text("---\nname: a\n# Rules\n", "notes.md")
    assert rules(unclosed) == [(1, "front-matter", "warning")]
    assert "never closed" in unclosed[0].message
    partial = lint_text(front("title: Notes"), "notes.md")
    assert rules(partial) == [(1, "name-missing", "warning"), (1, "description-missing",
                                                               "warning"),
                              (2, "unknown-field", "warning")]
    assert lint_text("", "empty.md") == [Finding("empty.md", 1, "front-matter", "warning",
                                                 plain[0].message)]


# -- body: size and markers -----------------------------------------------------------------

def test_the_spec_body_recommendations_are_warnings() -> None:
    body = "".join(f"line {i}\n" for i in range(500))
    found = lint_text(front("name: a", "description: d", body=body), "S.md")
    assert rules(found) == [(5, "body-lines", "warning")]  # 504 lines; the body starts on 5
    assert lint_text(front("name: a", "description: d", body=body[:-200]), "S.md") == []
    wide = front("name: a", "description: d", body="word " * 4100)
    assert rules(lint_text(wide, "S.md", max_file_tokens=None)) == [(5, "body-tokens",
                                                                     "warning")]


def test_the_per_file_token_budget() -> None:
    text = GOOD + "x" * 400
    assert rules(lint_text(text, "S.md", max_file_tokens=100)) == [(1, "file-tokens", "error")]
    assert lint_text(text, "S.md", max_file_tokens=200) == []
    assert lint_text(text, "S.md", max_file_tokens=None) == []


BEGIN, END = "<!-- skilltrain:begin {} -->", "<!-- skilltrain:end {} -->"


@pytest.mark.parametrize("lines, line, words", [
    (["# R", BEGIN.format("keep"), "x"], 6, "'keep' begins here but never ends"),
    (["# R", "x", END.format("keep")], 7, "'keep' ends here but never begins"),
    ([BEGIN.format("a"), "x", END.format("b")], 7, "end of region 'b'"),
    ([BEGIN.format("a"), END.format("a"), BEGIN.format("a"), END.format("a")], 7,
     "already began on line 5"),
])
def test_unbalanced_markers_name_their_line(lines: list[str], line: int, words: str) -> None:
    found = lint_text(front("name: a", "description: d", body="\n".join(lines) + "\n"), "S.md")
    assert rules(found) == [(line, "markers", "error")] and words in found[0].message


def test_balanced_markers_pass() -> None:
    body = f"# R\n{BEGIN.format('keep')}\nNever X.\n{END.format('keep')}\n"
    assert lint_text(front("name: a", "description: d", body=body), "S.md") == []


# -- links ----------------------------------------------------------------------------------

def test_links_outside_code_are_found_and_urls_skipped() -> None:
    text = ("[a](references/a.md) ![img](assets/x.png \"title\")\n"
            "`[code](no.md)` [web](https://x.org/a.md) [mail](mailto:a@b) [top](#top)\n"
            "```\n[fenced](no.md)\n```\n"
            "[ref]: <docs/my file.md>\n[sec](guide.md#part) [enc](a%20b.md)\n")
    assert list(links(text)) == [(1, "references/a.md"), (1, "assets/x.png"),
                                 (6, "docs/my file.md"), (7, "guide.md"), (7, "a b.md")]


def test_a_single_files_broken_link_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x", encoding="utf-8")
    skill = tmp_path / "skill.md"
    skill.write_text(GOOD + "See [notes](notes.md) and [gone](gone.md).\n", encoding="utf-8")
    found = lint_path(skill)
    assert rules(found) == [(8, "link-missing", "warning")] and "'gone.md'" in found[0].message


# -- packages -------------------------------------------------------------------------------

def good_package(root: Path) -> Path:
    return package(root / "add-numbers", {
        "SKILL.md": GOOD + "See [the table](references/table.md); run scripts/check.py.\n",
        "references/table.md": "# Table\nBack to [the skill](../SKILL.md), "
                               "[also root-relative](scripts/check.py).\n",
        "scripts/check.py": "print('ok')\n",
        "assets/logo.png": "",
    })


def test_a_good_package_has_no_findings(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    (root / "assets" / "logo.png").write_bytes(b"\x89PNG\x00\x01")  # binary assets are fine
    assert lint_path(root) == []


def test_the_package_name_must_equal_its_folder(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    moved = root.rename(tmp_path / "adder")
    found = lint_path(moved)
    assert rules(found) == [(2, "name-folder", "error")]
    assert found[0].file == str(moved / "SKILL.md") and "'adder'" in found[0].message
    assert lint_path(tmp_path / "adder" / "SKILL.md") == []  # as a single file, no folder rule


def test_a_packages_skill_md_must_be_complete(tmp_path: Path) -> None:
    root = package(tmp_path / "notes", {"SKILL.md": "# Notes\nNo front matter.\n"})
    assert rules(lint_path(root)) == [(1, "front-matter", "error")]
    (root / "SKILL.md").write_text(front("name: notes"), encoding="utf-8")
    assert rules(lint_path(root)) == [(1, "description-missing", "error")]
    empty = package(tmp_path / "empty", {"README.md": "x"})
    assert rules(lint_path(empty)) == [(1, "skill-md-missing", "error")]


def test_broken_and_escaping_links_in_a_package(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    (tmp_path / "outside.md").write_text("x", encoding="utf-8")
    (root / "SKILL.md").write_text(
        GOOD + "[t](references/table.md)\n[gone](references/gone.md)\n[out](../outside.md)\n"
        "[abs](/etc/hostname)\n", encoding="utf-8")
    (root / "references" / "table.md").write_text("# T\n\n[x](missing.md)\n", encoding="utf-8")
    found = lint_path(root)
    assert [(Path(f.file).name, f.line, f.rule) for f in found] == [
        ("SKILL.md", 9, "link-missing"), ("SKILL.md", 10, "link-escapes"),
        ("SKILL.md", 11, "link-escapes"), ("table.md", 3, "link-missing")]
    assert all(f.severity == "error" for f in found)


def test_a_symlink_out_of_the_package_is_an_error(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    (tmp_path / "secret.txt").write_text("s", encoding="utf-8")
    (root / "references" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "linked").symlink_to(tmp_path)
    found = lint_path(root)
    assert [(Path(f.file).name, f.rule) for f in found] == [("linked", "file-escapes"),
                                                             ("leak.txt", "file-escapes")]


def test_markers_are_checked_in_reference_files_too(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    (root / "references" / "table.md").write_text(f"a\n{BEGIN.format('k')}\n", encoding="utf-8")
    assert [(Path(f.file).name, f.line, f.rule) for f in lint_path(root)] == [
        ("table.md", 2, "markers")]


def test_package_token_budgets(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    (root / "references" / "big.md").write_text("y" * 2000, encoding="utf-8")
    assert lint_path(root) == []
    per_file = lint_path(root, max_file_tokens=400)
    assert [(Path(f.file).name, f.rule) for f in per_file] == [("big.md", "file-tokens")]
    total = lint_path(root, max_tokens=500)
    assert [(Path(f.file).name, f.line, f.rule) for f in total] == [("SKILL.md", 1,
                                                                     "total-tokens")]


def test_an_unreadable_markdown_file_in_a_package(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    (root / "references" / "bad.md").write_bytes(b"\xff\xfe bad")
    found = lint_path(root)
    assert [(Path(f.file).name, f.rule) for f in found] == [("bad.md", "unreadable")]


def test_the_built_in_suites_starting_skills_are_clean() -> None:
    for suite in list_suites():
        assert lint_text(suite.skill, suite.name) == [], suite.name


PIECES = st.sampled_from(["---\n", "name: a--b\n", "name: ok\n", "description: d\n",
                          "metadata: {v: 1}\n", "name: 2024-13-45\n", "[", "]", "(x.md)",
                          "[l](../up.md)", "<!-- skilltrain:begin a -->",
                          "<!-- skilltrain:end a -->", "```\n", "\n", ": ", "&a *a", "text"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.lists(PIECES, max_size=14).map("".join)))
def test_lint_never_raises_and_every_line_is_in_the_file(text: str) -> None:
    """Whatever the text, lint answers with findings (never an exception) on real lines."""
    last = text.count("\n") + 1
    for finding in lint_text(text, "S.md", folder=Path("/nonexistent-folder")):
        assert 1 <= finding.line <= last, finding
        assert finding.severity in ("error", "warning") and finding.message


# -- the command ----------------------------------------------------------------------------

def run_lint(*args: str) -> object:
    return CliRunner().invoke(app, ["lint", *args])


def test_lint_exit_codes_and_lines(tmp_path: Path) -> None:
    clean = tmp_path / "clean.md"
    clean.write_text(GOOD, encoding="utf-8")
    result = run_lint(str(clean))
    assert result.exit_code == 0 and result.stdout == ""
    assert "0 error(s), 0 warning(s)" in result.stderr

    plain = tmp_path / "plain.md"
    plain.write_text("# Rules\n", encoding="utf-8")
    assert run_lint(str(plain)).exit_code == 0  # warnings pass...
    strict = run_lint(str(plain), "--strict")
    assert strict.exit_code == 1  # ...unless --strict
    assert strict.stdout == f"{plain}:1: front-matter: warning: {lint_path(plain)[0].message}\n"

    bad = tmp_path / "bad.md"
    bad.write_text(front("name: a--b", "description: " + "d" * 1100), encoding="utf-8")
    result = run_lint(str(bad))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [[f"{bad}:2", "name-format"],
                                                          [f"{bad}:3", "description-format"]]
    missing = run_lint(str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "nope: no such skill file" in missing.stderr


def test_lint_json_and_budget_flags(tmp_path: Path) -> None:
    root = good_package(tmp_path)
    result = run_lint(str(root), "--json", "--max-file-tokens", "5")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["errors"] == len(report["findings"]) >= 2 and report["warnings"] == 0
    assert {f["rule"] for f in report["findings"]} == {"file-tokens"}
    assert report["findings"][0] == {"file": str(root / "SKILL.md"), "line": 1,
                                     "rule": "file-tokens", "severity": "error",
                                     "message": report["findings"][0]["message"]}
    assert run_lint(str(root), "--max-tokens", "0").exit_code == 2  # a budget is at least 1


def test_front_matter_yaml_reads_as_an_impossible_date_is_a_skill_error(tmp_path):
    # `name: 2024-13-45` makes yaml raise ValueError, not YAMLError: once a traceback, exit 0
    from skilltrain.skill import Skill, SkillError

    path = tmp_path / "SKILL.md"
    path.write_text("---\nname: 2024-13-45\n---\nAnswer briefly.\n")
    with pytest.raises(SkillError, match="front matter is not valid YAML"):
        Skill.from_file(path)
