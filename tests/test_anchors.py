"""The anchor ladder: exact, then whitespace/case-normalised, then one clearly closest line.

Each rung has a concrete example with its status and the exact text it resolved to; ambiguity is
decided at the rung that saw it; nothing lands in a protected region; difflib stands in for
rapidfuzz with the same answers. Property tests apply mis-copied anchors to generated skills.
"""

from __future__ import annotations

import difflib
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skilltrain import anchors
from skilltrain.optim.update import apply_patch
from skilltrain.skill import Edit, EditResult, EditStatus, Skill

FRONT = "---\nname: x\ndescription: y\n---\n"


def block(name: str, inner: str) -> str:
    return f"<!-- skilltrain:begin {name} -->\n{inner}\n<!-- skilltrain:end {name} -->"


def apply_one(text: str, **edit) -> tuple[str, EditStatus, str]:
    new, (result,) = Skill(text).apply([Edit(**edit)])
    return new.text, result.status, result.matched


def score(a: str, b: str) -> float:
    return anchors.similarity_function()(anchors.normalize(a), anchors.normalize(b))


@pytest.fixture(params=["rapidfuzz", "difflib"])
def backend(request, monkeypatch):
    """Run a test with rapidfuzz, and again with rapidfuzz treated as not installed."""
    if request.param == "difflib":
        monkeypatch.setitem(sys.modules, "rapidfuzz", None)  # `import rapidfuzz` now fails
    return request.param


# -- statuses and results ----------------------------------------------------------------------


def test_landed_covers_exactly_the_applied_statuses():
    landed = {s for s in EditStatus if s.landed}
    assert landed == {EditStatus.APPLIED, EditStatus.APPLIED_NORMALIZED,
                      EditStatus.APPLIED_FUZZY}


def test_edit_result_keeps_its_positional_constructor():
    result = EditResult(Edit(op="append", content="x"), EditStatus.APPLIED)
    assert result.matched == ""


def test_append_has_no_matched_text():
    _, status, matched = apply_one("Body.\n", op="append", content="More.")
    assert (status, matched) == (EditStatus.APPLIED, "")


def test_update_counts_every_landed_edit():
    skill = Skill("Be brief.\n- Always  show the Units.\nRound totals to two decimal places.\n")
    update = apply_patch(skill, [
        Edit(op="replace", target="Be brief.", content="Be short."),
        Edit(op="replace", target="- always show the units.", content="- Show units."),
        Edit(op="replace", target="Round totals to 2 decimal places.", content="Round to 2dp."),
        Edit(op="delete", target="nowhere at all in this skill"),
    ])
    assert [r.status for r in update.results] == [
        EditStatus.APPLIED, EditStatus.APPLIED_NORMALIZED, EditStatus.APPLIED_FUZZY,
        EditStatus.ANCHOR_MISSING]
    assert update.applied == 3
    assert update.edits_for_memory() == [r.edit for r in update.results[:3]]
    assert update.candidate.text == "Be short.\n- Show units.\nRound to 2dp.\n"


# -- rung 1: exact -----------------------------------------------------------------------------


def test_exact_rung(backend):
    assert apply_one("Be brief.\nUse tools.\n", op="replace", target="Be brief.",
                     content="Be very brief.") == (
        "Be very brief.\nUse tools.\n", EditStatus.APPLIED, "Be brief.")


def test_exact_rung_stripped_target(backend):
    assert apply_one("Be brief.\n", op="delete", target="  Be brief.  \n") == (
        "", EditStatus.APPLIED, "Be brief.")


def test_exact_ambiguity_stops_the_ladder():
    # exact sees two places; the normalised rung must not get to pick one of them
    text = "- check units\n- check units\n"
    assert apply_one(text, op="replace", target="check units", content="x") == (
        text, EditStatus.AMBIGUOUS_ANCHOR, "")


# -- rung 2: whitespace and case normalised ----------------------------------------------------


def test_normalized_rung_maps_back_to_the_exact_span(backend):
    text = "# Rules\n- Always  check the Units.\n- Be brief.\n"
    assert apply_one(text, op="replace", target="- always check the units.",
                     content="- Check units.") == (
        "# Rules\n- Check units.\n- Be brief.\n", EditStatus.APPLIED_NORMALIZED,
        "- Always  check the Units.")


def test_normalized_rung_spans_lines_the_target_joined(backend):
    text = "Be brief.\nUse tools.\nEnd.\n"
    assert apply_one(text, op="insert_after", target="be brief. use tools.", content="NEW") == (
        "Be brief.\nUse tools.\nNEW\nEnd.\n", EditStatus.APPLIED_NORMALIZED,
        "Be brief.\nUse tools.")


def test_normalized_rung_handles_casefold_expansion():
    text = "Maße und Gewichte prüfen.\nEnde.\n"
    assert apply_one(text, op="delete", target="MASSE UND GEWICHTE PRÜFEN.") == (
        "Ende.\n", EditStatus.APPLIED_NORMALIZED, "Maße und Gewichte prüfen.")
    # half of an expanded character ("ß" -> "ss") is not a match on whole characters
    assert anchors.resolve("aße", "as", []) == "anchor_missing"


def test_normalized_ambiguity(backend):
    text = "- Check units.\n- check  units.\n"
    assert apply_one(text, op="delete", target="- CHECK units.") == (
        text, EditStatus.AMBIGUOUS_ANCHOR, "")


def test_normalized_match_in_a_protected_region_is_protected():
    text = f"{FRONT}Body.\n{block('slow-update', 'Keep  the Guidance.')}\n"
    assert apply_one(text, op="replace", target="keep the guidance.", content="x") == (
        text, EditStatus.PROTECTED_REGION, "")


# -- rung 3: the one clearly closest line ------------------------------------------------------


def test_fuzzy_rung_word_dropped(backend):
    text = "# Units\n- Always show the units of the answer.\n- Be brief.\n"
    target = "- Always show units of the answer."
    assert score(target, "- Always show the units of the answer.") > 0.9
    assert apply_one(text, op="replace", target=target, content="- Show units.") == (
        "# Units\n- Show units.\n- Be brief.\n", EditStatus.APPLIED_FUZZY,
        "- Always show the units of the answer.")


def test_fuzzy_rung_keeps_indentation_and_a_changed_word(backend):
    text = "Rules:\n  Round totals to two decimal places.  \nEnd.\n"
    assert apply_one(text, op="insert_after", target="round totals to 2 decimal places.",
                     content="  Never round twice.") == (
        "Rules:\n  Round totals to two decimal places.  \n  Never round twice.\nEnd.\n",
        EditStatus.APPLIED_FUZZY, "Round totals to two decimal places.")


def test_fuzzy_rung_multi_line_target_matches_a_window(backend):
    text = "# Dates\nWrite every date as DD.MM.YYYY.\nNever use month names.\n\nEnd.\n"
    target = "Write each date as DD.MM.YYYY.\nNever use the month names."
    assert apply_one(text, op="delete", target=target) == (
        "# Dates\n\nEnd.\n", EditStatus.APPLIED_FUZZY,
        "Write every date as DD.MM.YYYY.\nNever use month names.")


def test_fuzzy_ambiguity(backend):
    text = "- Always show the units of the sum.\n- Always show the units of the sums.\n"
    target = "- Always show the units of the sum!"  # closer to the first, but not clearly
    assert min(score(target, line) for line in text.splitlines()) >= anchors.FUZZY_MIN_SCORE
    assert apply_one(text, op="delete", target=target) == (text, EditStatus.AMBIGUOUS_ANCHOR, "")


def test_fuzzy_threshold_leaves_a_loose_match_missing(backend):
    text = "# Totals\nRound totals to two decimal places.\n"
    target = "Round the totals to three places."
    assert 0.65 < score(target, "Round totals to two decimal places.") < 0.8
    assert apply_one(text, op="replace", target=target, content="x") == (
        text, EditStatus.ANCHOR_MISSING, "")


@pytest.mark.parametrize(("best", "second", "expected"), [
    (0.95, 0.80, "applied_fuzzy"),       # clear winner
    (0.85, 0.10, "applied_fuzzy"),       # exactly at the threshold
    (0.84, 0.10, "anchor_missing"),      # below it
    (0.95, 0.91, "ambiguous_anchor"),    # two above the threshold, too close
    (0.88, 0.84, "anchor_missing"),      # too close, but only one above the threshold
    (0.95, 0.89, "applied_fuzzy"),       # more than the margin ahead
])
def test_fuzzy_decision_rule(monkeypatch, best, second, expected):
    lines = {"first line of the skill": best, "second line of it": second}
    monkeypatch.setattr(anchors, "similarity_function", lambda: lambda a, b: lines[b])
    text = "\n".join(lines) + "\n"
    found = anchors.resolve(text, "a target long enough", [])
    if expected == "applied_fuzzy":
        assert found == (0, len("first line of the skill"), "applied_fuzzy")
    else:
        assert found == expected


def test_short_targets_skip_the_fuzzy_rung(backend):
    text = "Be brief.\nUse tools.\n"
    assert score("Be brief!", "Be brief.") > anchors.FUZZY_MIN_SCORE
    assert apply_one(text, op="delete", target="  Be brief! ") == (
        text, EditStatus.ANCHOR_MISSING, "")


def test_fuzzy_never_lands_in_a_protected_region(backend):
    guidance = "Always double-check the final answer."
    text = f"{FRONT}# Body\nOther rules here.\n\n{block('slow-update', guidance)}\n"
    for op in ("insert_after", "replace", "delete"):
        assert apply_one(text, op=op, target="Always double-check the final answers.",
                         content="x") == (text, EditStatus.PROTECTED_REGION, "")
    assert apply_one(text, op="replace", target="description: yy", content="x") == (
        text, EditStatus.PROTECTED_REGION, "")  # a mis-copied front-matter line


def test_fuzzy_does_not_move_a_protected_anchor_to_a_lookalike(backend):
    # The target is a mis-copy of the protected line; the editable line is the runner-up.
    # Scoring only editable lines would silently edit the wrong place.
    text = (f"Always double-check the first answer.\n\n"
            f"{block('slow-update', 'Always double-check the final answer.')}\n")
    target = "Always double-check the final answers."
    assert score(target, "Always double-check the first answer.") >= anchors.FUZZY_MIN_SCORE
    assert apply_one(text, op="replace", target=target, content="x") == (
        text, EditStatus.PROTECTED_REGION, "")


def test_difflib_fallback_is_used_when_rapidfuzz_is_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidfuzz", None)
    sim = anchors.similarity_function()
    a, b = "round totals to two places", "round the totals to 2 places"
    assert sim(a, b) == difflib.SequenceMatcher(None, a, b).ratio()


# -- properties --------------------------------------------------------------------------------

VOCAB = ["check", "the", "units", "answer", "always", "never", "format", "date", "write",
         "rule", "tool", "use", "first", "last", "number", "sum", "total", "brief", "Round",
         "DD.MM.YYYY", "quote", "source", "cite", "table", "row", "column", "empty", "cell"]
words_st = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=8).map(" ".join)
line_st = st.one_of(  # mostly lines long enough for the fuzzy rung, some short, a few blank
    st.just(""),
    st.tuples(st.sampled_from(["", "- ", "# ", "  "]), words_st).map("".join),
    st.tuples(st.sampled_from(["", "- ", "1. "]), words_st, words_st).map(" ".join),
)
lines_st = st.lists(line_st, min_size=1, max_size=7)


@st.composite
def skills(draw) -> str:
    front = FRONT if draw(st.booleans()) else ""
    lines = draw(lines_st)
    if draw(st.booleans()):
        lines.append(block("slow-update", "\n".join(draw(lines_st))))
        lines += draw(st.lists(line_st, max_size=3))
    return front + "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@st.composite
def perturbed(draw, line: str) -> str:
    """A mis-copy of `line`: changed case, changed whitespace or one character changed."""
    kind = draw(st.sampled_from(["none", "upper", "lower", "swapcase", "double_space", "pad",
                                 *["replace_char", "insert_char", "delete_char"] * 2]))
    if kind in ("upper", "lower", "swapcase"):
        return getattr(line, kind)()
    if kind == "double_space":
        return line.replace(" ", "  ")
    if kind == "pad":
        return "  " + line.strip() + " \n"
    if kind == "none" or not line:
        return line
    i = draw(st.integers(0, len(line) - 1))
    char = draw(st.sampled_from("aeiouxz .-"))
    if kind == "replace_char":
        return line[:i] + char + line[i + 1:]
    if kind == "insert_char":
        return line[:i] + char + line[i:]
    return line[:i] + line[i + 1:]


@st.composite
def cases(draw) -> tuple[str, Edit]:
    text = draw(skills())
    lines = text.splitlines() or [""]
    i = draw(st.sampled_from([i for i, line in enumerate(lines) if line.strip()] or [0]))
    source = "\n".join(lines[i: i + draw(st.sampled_from([1, 1, 1, 2]))])
    target = draw(perturbed(source))
    op = draw(st.sampled_from(["insert_after", "replace", "delete"]))
    content = "\n".join(draw(st.lists(line_st, min_size=1, max_size=2)))
    return text, Edit(op=op, target=target, content=content)


def _protected(skill: Skill) -> list[str]:
    return [skill.text[s:e] for s, e in skill.protected_spans()]


def _expected(before: str, edit: Edit, at: int, matched: str) -> set[str]:
    """What `before` becomes when `edit` acts on the occurrence of `matched` at `at`."""
    end = at + len(matched)
    if edit.op == "replace":
        return {before[:at] + edit.content + before[end:]}
    if edit.op == "delete":
        return {before[:at] + before[end:], before[:at] + before[end + 1:]}
    line_end = before.find("\n", max(at, end - 1))
    line_end = len(before) if line_end == -1 else line_end
    new = before[:line_end] + "\n" + edit.content.strip("\n") + before[line_end:]
    return {new + "\n" if line_end == len(before) else new}


def _occurrences(text: str, piece: str) -> list[int]:
    out, at = [], text.find(piece)
    while at != -1:
        out.append(at)
        at = text.find(piece, at + 1)
    return out


def _changed_span(before: str, after: str) -> tuple[int, int]:
    """The one span of `before` outside the common prefix and suffix of before and after."""
    p = 0
    while p < min(len(before), len(after)) and before[p] == after[p]:
        p += 1
    s = 0
    while s < min(len(before), len(after)) - p and before[-1 - s] == after[-1 - s]:
        s += 1
    return p, len(before) - s


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_property_mis_copied_anchors(case):
    text, edit = case
    skill = Skill(text)
    new, (result,) = skill.apply([edit])

    # (a) front matter and protected regions are byte-identical, whatever the status
    assert _protected(new) == _protected(skill)

    if not result.status.landed:  # (c) an edit that did not land changes nothing
        assert new.text == text and result.matched == ""
        return

    # the matched text is what the rung says it is
    matched = result.matched
    assert matched and matched in text
    if result.status is EditStatus.APPLIED:
        assert matched in (edit.target, edit.target.strip())
    elif result.status is EditStatus.APPLIED_NORMALIZED:
        assert anchors.normalize(matched) == anchors.normalize(edit.target)
    else:
        assert score(matched, edit.target) >= anchors.FUZZY_MIN_SCORE

    # (b) the edit acted in exactly one place: on one occurrence of the matched text, outside
    # every protected span
    places = [at for at in _occurrences(text, matched) if new.text in _expected(
        text, edit, at, matched)]
    assert places, (edit, result)
    lo, hi = _changed_span(text, new.text)
    assert not any(lo < e and hi > s for s, e in skill.protected_spans()) or lo == hi


@settings(max_examples=100, deadline=None)
@given(case=cases())
def test_property_resolve_is_deterministic_and_agrees_with_apply(case):
    text, edit = case
    skill = Skill(text)
    found = anchors.resolve(text, edit.target, skill.protected_spans())
    assert found == anchors.resolve(text, edit.target, skill.protected_spans())
    _, (result,) = skill.apply([edit])
    if isinstance(found, str):
        assert result.status == found or result.status is EditStatus.PROTECTED_REGION
    else:
        start, end, status = found
        assert text[start:end] == result.matched or result.status is EditStatus.PROTECTED_REGION
        assert result.status in (status, EditStatus.PROTECTED_REGION)
