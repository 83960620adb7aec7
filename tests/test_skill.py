"""The skill document: exact-anchor edits, protected regions, front matter, identity and diffs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skilltrain.skill import MARKER, Edit, EditStatus, Skill, SkillError

FRONT = "---\nname: x\ndescription: y\n---\n"
REGION_NAMES = ["slow-update", "appendix", "notes"]
OPS = ["append", "insert_after", "replace", "delete"]

# Markdown-ish lines. Random text has no '-' so that no line can read as a front-matter fence.
WORDS = ["alpha", "beta", "gamma", "alpha beta", "- step one", "- step", "# Rules",
         "## Tips", "Use the tool.", "Check units.", "`code`", "  indented", "x", "", "* star"]
line_st = st.one_of(st.sampled_from(WORDS), st.text(alphabet="abcxyz .#*`", max_size=12))
lines_st = st.lists(line_st, max_size=6)


def block(name: str, inner: str) -> str:
    return f"<!-- skilltrain:begin {name} -->\n{inner}\n<!-- skilltrain:end {name} -->"


@st.composite
def skills(draw):
    """(text, front matter string or '', {region name: full region block})."""
    front = FRONT if draw(st.booleans()) else ""
    names = draw(st.lists(st.sampled_from(REGION_NAMES), max_size=2, unique=True))
    out_lines = list(draw(lines_st))
    regions: dict[str, str] = {}
    for name in names:
        regions[name] = block(name, "\n".join(draw(lines_st)))
        out_lines.append(regions[name])
        out_lines.extend(draw(lines_st))
    trailing = draw(st.sampled_from(["", "\n", "\n\n"]))
    return front + "\n".join(out_lines) + trailing, front, regions


@st.composite
def edits_for(draw, text: str):
    op = draw(st.sampled_from(OPS))
    kind = draw(st.sampled_from(["substring", "line", "random", "empty"]))
    if kind == "substring" and text:
        i = draw(st.integers(0, len(text) - 1))
        j = draw(st.integers(i + 1, min(len(text), i + 40)))
        target = text[i:j]
    elif kind == "line" and text:
        target = draw(st.sampled_from(text.splitlines() or [""]))
    elif kind == "random":
        target = draw(line_st)
    else:
        target = ""
    content = draw(st.one_of(
        line_st,
        lines_st.map("\n".join),
        st.just(""),
        st.just("\n\n"),
        st.sampled_from([f"{MARKER}end notes -->", f"text {MARKER}begin evil -->"]),
    ))
    return Edit(op=op, target=target, content=content)


def _noop_allowed(edit: Edit, matched: str = "") -> bool:
    """Applied edits that may leave the text as it was: an append of only whitespace (Skill
    drops blank paragraphs), or a replace whose content equals its anchor (or the text a
    mis-copied anchor resolved to)."""
    if edit.op == "append":
        return not edit.content.strip()
    return edit.op == "replace" and edit.content in (edit.target, edit.target.strip(), matched)


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), spec=skills())
def test_property_protected_statuses_determinism(data, spec):
    text, front, regions = spec
    skill = Skill(text)
    edits = data.draw(st.lists(edits_for(text), max_size=6), label="edits")

    new, results = skill.apply(edits)

    # every edit gets exactly one status, in order
    assert len(results) == len(edits)
    for edit, result in zip(edits, results):
        assert result.edit is edit
        assert isinstance(result.status, EditStatus)

    # protected parts are untouched
    if front:
        assert new.text.startswith(front)
        assert new.front_matter == {"name": "x", "description": "y"}
    else:
        assert new.front_matter == {}
    for name, region_block in regions.items():
        assert new.text.count(region_block) == 1, name
        assert new.region(name) == skill.region(name)
    new.validate()  # still a usable skill

    # deterministic: the same start and edits give the same text and statuses
    again, results2 = Skill(text).apply(edits)
    assert again.text == new.text
    assert [r.status for r in results2] == [r.status for r in results]

    # one by one gives the same result; applied edits change the text, others never do
    cur = skill
    for edit, result in zip(edits, results):
        nxt, (single,) = cur.apply([edit])
        assert single.status == result.status
        if result.status.landed:  # any rung of the anchor ladder
            assert nxt.text != cur.text or _noop_allowed(edit, result.matched), edit
        else:
            assert nxt.text == cur.text
        if MARKER in edit.content:
            assert result.status is EditStatus.PROTECTED_REGION
        elif edit.op != "append" and not edit.target:
            assert result.status is EditStatus.ANCHOR_MISSING
        cur = nxt
    assert cur.text == new.text


@settings(max_examples=100, deadline=None)
@given(data=st.data(), spec=skills())
def test_property_targets_inside_regions_are_protected(data, spec):
    text, front, regions = spec
    protected = [front] if front else []
    protected += list(regions.values())
    if not protected:
        return
    piece = data.draw(st.sampled_from(protected), label="piece")
    i = data.draw(st.integers(0, len(piece) - 1), label="i")
    j = data.draw(st.integers(i + 1, len(piece)), label="j")
    target = piece[i:j]
    if not target.strip():
        return
    op = data.draw(st.sampled_from(["insert_after", "replace", "delete"]), label="op")
    new, (result,) = Skill(text).apply([Edit(op=op, target=target, content="zzz")])
    assert result.status in (EditStatus.PROTECTED_REGION, EditStatus.AMBIGUOUS_ANCHOR)
    assert new.text == text


# -- each op -----------------------------------------------------------------------------------


def apply_one(text: str, **edit) -> tuple[str, EditStatus]:
    new, (result,) = Skill(text).apply([Edit(**edit)])
    return new.text, result.status


def test_append_to_plain_text():
    assert apply_one("# Rules\nBe brief.\n", op="append", content="Show units.") == (
        "# Rules\nBe brief.\n\nShow units.\n", EditStatus.APPLIED)


def test_append_to_empty_skill():
    assert apply_one("", op="append", content="First rule.") == ("First rule.\n",
                                                                 EditStatus.APPLIED)


def test_append_lands_before_trailing_protected_regions():
    a, b = block("slow-update", "Guidance."), block("appendix", "Reminder.")
    text = f"{FRONT}# Rules\nBe brief.\n\n{a}\n\n{b}\n"
    new, status = apply_one(text, op="append", content="New rule.")
    assert status is EditStatus.APPLIED
    assert new == f"{FRONT}# Rules\nBe brief.\n\nNew rule.\n\n{a}\n\n{b}\n"


def test_append_after_region_followed_by_text_goes_to_the_end():
    a = block("notes", "Kept.")
    text = f"Intro.\n\n{a}\n\nOutro.\n"
    new, status = apply_one(text, op="append", content="Last.")
    assert status is EditStatus.APPLIED
    assert new == f"Intro.\n\n{a}\n\nOutro.\n\nLast.\n"


def test_append_empty_content_is_applied_and_changes_nothing():
    assert apply_one("Body.\n", op="append", content="\n\n") == ("Body.\n", EditStatus.APPLIED)


def test_append_drops_paragraphs_the_skill_already_has():
    text = f"{FRONT}# Dates\n\nRewrite the date in the house format.\n"
    content = ("# Dates\n\nRewrite the date   in the house\nformat.\n\n"
               "Write dates as DD.MM.YYYY.\n\n# Dates")
    new, status = apply_one(text, op="append", content=content)
    assert status is EditStatus.APPLIED
    assert new == text + "\nWrite dates as DD.MM.YYYY.\n"


def test_append_of_text_already_there_is_a_duplicate_and_changes_nothing():
    text = f"{FRONT}# Rules\n\nBe brief.\n\n- Show units.\n"
    assert apply_one(text, op="append", content="Be brief.\n\n- Show   units.") == (
        text, EditStatus.DUPLICATE)


def test_insert_after_places_content_after_the_anchor_line():
    text = "a\nthe middle line\nc\n"
    assert apply_one(text, op="insert_after", target="middle", content="NEW") == (
        "a\nthe middle line\nNEW\nc\n", EditStatus.APPLIED)


def test_insert_after_last_line_without_newline():
    assert apply_one("a\nb", op="insert_after", target="b", content="NEW") == (
        "a\nb\nNEW\n", EditStatus.APPLIED)


def test_insert_after_anchor_ending_in_newline_inserts_after_that_line():
    # The optimizer quoted the whole line "foo" including its line break: the new line belongs
    # right after "foo", not after the line that follows it.
    assert apply_one("foo\nbar\n", op="insert_after", target="foo\n", content="NEW") == (
        "foo\nNEW\nbar\n", EditStatus.APPLIED)


def test_insert_after_line_that_opens_a_region_is_protected():
    text = f"Intro {block('notes', 'Kept.')}\nTail.\n"
    assert apply_one(text, op="insert_after", target="Intro", content="NEW") == (
        text, EditStatus.PROTECTED_REGION)


def test_replace_exact_anchor():
    assert apply_one("Be brief.\nUse tools.\n", op="replace", target="Be brief.",
                     content="Be very brief.") == ("Be very brief.\nUse tools.\n",
                                                   EditStatus.APPLIED)


def test_replace_falls_back_to_stripped_anchor():
    assert apply_one("Be brief.\n", op="replace", target="  Be brief.  \n", content="Short.") == (
        "Short.\n", EditStatus.APPLIED)


def test_delete_whole_line_drops_its_line_break():
    assert apply_one("a\nremove me\nc\n", op="delete", target="remove me") == (
        "a\nc\n", EditStatus.APPLIED)


def test_delete_part_of_a_line():
    assert apply_one("keep this but not that\n", op="delete", target=" but not that") == (
        "keep this\n", EditStatus.APPLIED)


# -- each status -------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["insert_after", "replace", "delete"])
@pytest.mark.parametrize("target", ["nowhere", "", "   "])
def test_anchor_missing(op, target):
    assert apply_one("a\nb\n", op=op, target=target, content="x") == (
        "a\nb\n", EditStatus.ANCHOR_MISSING)


@pytest.mark.parametrize("op", ["insert_after", "replace", "delete"])
def test_ambiguous_anchor(op):
    text = "- check units\n- check units\n"
    assert apply_one(text, op=op, target="check units", content="x") == (
        text, EditStatus.AMBIGUOUS_ANCHOR)


def test_overlapping_occurrences_are_ambiguous():
    # "- item\n- item" occurs twice (overlapping) in three repeated lines; str.count says 1.
    text = "- item\n- item\n- item\n"
    assert apply_one(text, op="replace", target="- item\n- item", content="X") == (
        text, EditStatus.AMBIGUOUS_ANCHOR)


def test_anchor_in_region_and_outside_is_ambiguous_not_applied():
    text = f"Rule A.\n{block('notes', 'Rule A.')}\n"
    assert apply_one(text, op="delete", target="Rule A.") == (text, EditStatus.AMBIGUOUS_ANCHOR)


@pytest.mark.parametrize("op", ["insert_after", "replace", "delete"])
@pytest.mark.parametrize("target", ["Guidance.", "skilltrain:end slow-update", "name: x"])
def test_targets_in_protected_parts(op, target):
    text = f"{FRONT}Body.\n{block('slow-update', 'Guidance.')}\n"
    assert apply_one(text, op=op, target=target, content="x") == (
        text, EditStatus.PROTECTED_REGION)


def test_target_spanning_into_a_region_is_protected():
    text = f"Body.\n{block('notes', 'Kept.')}\n"
    assert apply_one(text, op="replace", target="Body.\n<!--", content="x") == (
        text, EditStatus.PROTECTED_REGION)


@pytest.mark.parametrize("op", OPS)
def test_content_with_a_marker_is_protected(op):
    text = f"Body.\n{block('notes', 'Kept.')}\n"
    content = f"sneaky\n{MARKER}end notes -->"
    assert apply_one(text, op=op, target="Body.", content=content) == (
        text, EditStatus.PROTECTED_REGION)


def test_edit_cannot_forge_a_marker_that_changes_a_region():
    # The content holds no full marker, but together with the text after the anchor it spells
    # "<!-- skilltrain:begin notes -->", which re-pairs the markers and changes the region.
    text = f"Tip X:begin notes -->\nhello\n{block('notes', 'secret')}\n"
    skill = Skill(text)
    assert skill.region("notes") == "secret"
    new, (result,) = skill.apply([Edit(op="replace", target="X", content="<!-- skilltrain")])
    assert new.region("notes") == "secret"
    assert result.status is EditStatus.PROTECTED_REGION


def test_statuses_in_a_batch_follow_order_and_state():
    skill = Skill("one\ntwo\n")
    edits = [
        Edit(op="replace", target="one", content="uno"),
        Edit(op="delete", target="one"),  # gone after the first edit
        Edit(op="insert_after", target="uno", content="two"),  # now "two" appears twice
        Edit(op="delete", target="two"),
    ]
    new, results = skill.apply(edits)
    assert [r.status for r in results] == [EditStatus.APPLIED, EditStatus.ANCHOR_MISSING,
                                           EditStatus.APPLIED, EditStatus.AMBIGUOUS_ANCHOR]
    assert new.text == "uno\ntwo\ntwo\n"
    assert skill.text == "one\ntwo\n"  # the original is immutable


# -- regions, identity, diff -------------------------------------------------------------------


def test_region_reads_inner_text():
    inner = "line 1\nline 2"
    skill = Skill(f"Body.\n{block('notes', inner)}\n")
    assert skill.region("notes") == "line 1\nline 2"
    assert skill.region("missing") is None


def test_with_region_replaces_only_that_region():
    a, b = block("slow-update", "Old guidance."), block("appendix", "Reminder.")
    skill = Skill(f"{FRONT}Body.\n\n{a}\n\nMiddle.\n\n{b}\n")
    new = skill.with_region("slow-update", "\nNew guidance.\n")
    fresh = block("slow-update", "New guidance.")
    assert new.text == f"{FRONT}Body.\n\n{fresh}\n\nMiddle.\n\n{b}\n"
    assert new.region("slow-update") == "New guidance."
    assert new.region("appendix") == "Reminder."
    assert skill.region("slow-update") == "Old guidance."


def test_with_region_creates_missing_region_at_the_end():
    new = Skill("Body.\n\n").with_region("appendix", "Remember.")
    assert new.text == f"Body.\n\n{block('appendix', 'Remember.')}\n"
    assert new.region("appendix") == "Remember."


def test_hash_changes_iff_text_changes():
    a, b = Skill("Body.\n"), Skill("Body.\n")
    assert a.hash == b.hash and len(a.hash) == 16
    assert Skill("Body!\n").hash != a.hash
    same, results = a.apply([Edit(op="delete", target="nowhere")])
    assert results[0].status is EditStatus.ANCHOR_MISSING and same.hash == a.hash
    changed, _ = a.apply([Edit(op="append", content="More.")])
    assert changed.hash != a.hash


def test_size_measures():
    skill = Skill("abcde")
    assert skill.chars == 5 and skill.tokens == 2


def test_diff_shows_changed_lines_and_names():
    old = Skill("a\nb\nc\n")
    new, _ = old.apply([Edit(op="replace", target="b", content="B")])
    diff = old.diff(new, from_name="v0001", to_name="v0002")
    lines = diff.splitlines()
    assert lines[0] == "--- v0001" and lines[1] == "+++ v0002"
    assert "-b" in lines and "+B" in lines
    assert " a" in lines and " c" in lines
    assert old.diff(old) == ""


# -- front matter ------------------------------------------------------------------------------


def test_front_matter_parsed_and_body_excludes_it():
    skill = Skill(FRONT + "\n# Rules\n")
    assert skill.name == "x" and skill.description == "y"
    assert skill.body == "# Rules\n"
    assert Skill("# Rules\n").front_matter == {} and Skill("# Rules\n").name is None
    skill.validate()


@pytest.mark.parametrize("name", ["Bad_Name", "-lead", "trail-", "a" * 65, "UPPER", 7])
def test_bad_name_is_rejected(name):
    skill = Skill(f"---\nname: {name}\n---\nBody.\n")
    with pytest.raises(SkillError, match="'name'"):
        skill.validate()


@pytest.mark.parametrize("name", ["a", "my-skill-2", "a" * 64])
def test_good_names_are_accepted(name):
    Skill(f"---\nname: {name}\n---\nBody.\n").validate()


def test_description_too_long_is_rejected():
    Skill(f"---\ndescription: {'d' * 1024}\n---\n").validate()
    with pytest.raises(SkillError, match="description"):
        Skill(f"---\ndescription: {'d' * 1025}\n---\n").validate()


def test_front_matter_must_be_a_yaml_mapping():
    with pytest.raises(SkillError, match="YAML"):
        Skill("---\nname: [unclosed\n---\nBody.\n").validate()
    with pytest.raises(SkillError, match="mapping"):
        Skill("---\n- a\n- b\n---\nBody.\n").validate()


def test_duplicate_region_name_is_rejected():
    with pytest.raises(SkillError, match="twice"):
        Skill(f"{block('notes', 'a')}\n{block('notes', 'b')}\n").validate()


def test_from_file_reads_a_valid_skill(tmp_path):
    path = tmp_path / "SKILL.md"
    path.write_text(FRONT + "Body.\n", encoding="utf-8")
    assert Skill.from_file(path).text == FRONT + "Body.\n"


def test_from_file_error_names_the_file(tmp_path):
    path = tmp_path / "SKILL.md"
    path.write_text("---\nname: Not Valid\n---\nBody.\n", encoding="utf-8")
    with pytest.raises(SkillError) as info:
        Skill.from_file(path)
    assert str(path) in str(info.value) and "'name'" in str(info.value)
    missing = tmp_path / "nope.md"
    with pytest.raises(SkillError) as info:
        Skill.from_file(missing)
    assert str(missing) in str(info.value)


def test_edit_describe():
    assert Edit(op="append", content="Add   this\nrule").describe() == "append: Add this rule"
    assert Edit(op="delete", target="old").describe() == "delete: old"
    assert Edit(op="replace", target="a", content="b").describe() == "replace [a] -> b"
    long = Edit(op="append", content="w " * 100).describe()
    assert long.endswith("...") and len(long) == len("append: ") + 60


def test_an_append_of_only_whitespace_changes_nothing():
    """Found by the property above (CI, a random draw): a blank append lands as a no-op, beside
    a protected region too, and the property's no-op allowance now says so."""
    skill = Skill("<!-- skilltrain:begin slow-update -->\n\n<!-- skilltrain:end slow-update -->")
    for blank in (" ", "\n", " \n\t"):
        new, (result,) = skill.apply([Edit(op="append", target="", content=blank)])
        assert new.text == skill.text and result.status is EditStatus.APPLIED
