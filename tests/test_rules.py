"""Rule judges: each kind firing and not firing, the combination, feedback that never quotes a
regex, and one-line errors that name the bad rule."""

from __future__ import annotations

import asyncio

import pytest

from skilltrain.data import Task
from skilltrain.records import Rollout
from skilltrain.rules import REFUSAL_OPENINGS, has_section, is_refusal, tool_names
from skilltrain.scoring import ScorerError, make_scorer, score_rollout

PATTERN = r"^Total: \d+ items?$"


def task(rules=None, tid: str = "t1") -> Task:
    return Task(id=tid, input="q", answer="-", meta={} if rules is None else {"rules": rules})


def rollout(answer: str, trajectory=None) -> Rollout:
    return Rollout(task_id="t1", skill_hash="h", answer=answer, trajectory=trajectory or [])


def verdict(rule: dict, answer: str, trajectory=None):
    return make_scorer("rules", rules=[rule]).score(task(), rollout(answer, trajectory))


CASES = [  # (rule, passing answer, failing answer)
    ({"contains": "Paris"}, "It is paris.", "It is Lyon."),
    ({"contains": "Paris", "ignore_case": False}, "Paris.", "paris."),
    ({"not_contains": "TODO"}, "done", "left a todo here"),
    ({"regex": PATTERN}, "Total: 3 items", "total: 3 items"),
    ({"regex": PATTERN, "ignore_case": True}, "total: 3 items", "3 items"),
    ({"section_present": "Summary"}, "intro\n## Summary\ntext", "intro\nno summary here"),
    ({"section_present": "Summary"}, "**Summary:** short", "A summary: of nothing"),
    ({"min_chars": 5}, "  12345  ", "1234"),
    ({"max_chars": 5}, "12345\n", "123456"),
    ({"no_refusal": True}, "Sure: 42", "I'm sorry, I can't help with that."),
]


@pytest.mark.parametrize(("rule", "good", "bad"), CASES)
def test_each_kind_fires_and_does_not(rule, good, bad):
    ok, failed = verdict(rule, good), verdict(rule, bad)
    assert (ok.hard, ok.soft) == (1.0, 1.0), ok.feedback
    assert (failed.hard, failed.soft) == (0.0, 0.0)
    assert failed.feedback.startswith("failed 1 of 1 rules: ")


def test_tool_called_reads_the_trajectory():
    calls = [{"role": "assistant", "content": "",
              "tool_calls": [{"id": "c1", "type": "function",
                              "function": {"name": "python", "arguments": "{}"}}]},
             {"role": "tool", "tool_call_id": "c1", "name": "python", "content": "ok"}]
    assert verdict({"tool_called": "python"}, "done", calls).hard == 1.0
    miss = verdict({"tool_called": "write_file"}, "done", calls)
    assert miss.hard == 0.0 and "'write_file' was never called" in miss.feedback
    assert verdict({"tool_called": "python"}, "done", []).hard == 0.0
    assert tool_names([{"role": "tool", "name": "read_file"}, "junk"]) == {"read_file"}


def test_helpers_on_edge_cases():
    assert has_section("# Steps #\n1.", "steps") and not has_section("#Steps", "Steps")
    assert has_section("**Plan**\n- a", "Plan:") and not has_section("Plan", "Plan")
    assert not has_section("## Summary", "summary", ignore_case=False)
    assert is_refusal("  “I’m sorry, no.") and not is_refusal("The sorry state of it")
    assert all(is_refusal(opening.upper() + " x") for opening in REFUSAL_OPENINGS)


def test_combination_is_all_for_hard_and_fraction_for_soft():
    rules = [{"contains": "a"}, {"contains": "b"}, {"contains": "c"}, {"max_chars": 3}]
    scorer = make_scorer("rules", rules=rules)
    for answer in ("", "a", "ab", "abc", "abcd", "xbc"):
        expect = (sum(ch in answer for ch in "abc") + (len(answer) <= 3)) / 4
        got = scorer.score(task(), rollout(answer))
        assert got.soft == pytest.approx(round(expect, 4))
        assert got.hard == float(expect == 1.0)
        assert got.feedback.count(";") == max(0, round((1 - expect) * 4) - 1)


def test_config_rules_come_first_then_the_tasks_own():
    scorer = make_scorer("rules", rules=[{"contains": "x"}])
    both = scorer.score(task([{"regex": PATTERN}]), rollout("x"))
    assert (both.hard, both.soft) == (0.0, 0.5)
    assert "(rule 2)" in both.feedback  # numbered after the config's rule
    only_task = make_scorer("rules").score(task('[{"contains": "x"}]'), rollout("x"))  # CSV cell
    assert only_task.hard == 1.0 and only_task.feedback == "all 1 rules pass"


def test_feedback_never_quotes_a_regex():
    rules = [{"regex": PATTERN}, {"regex": r"(?i)secret-token-\w+"},
             {"regex": r"\bfoo\b", "describe": "the word foo"}]
    got = make_scorer("rules", rules=rules).score(task(), rollout("nothing matches"))
    assert got.hard == 0.0 and got.soft == 0.0
    for rule in rules:
        assert rule["regex"] not in got.feedback
    assert "secret-token" not in got.feedback and "\\d" not in got.feedback
    assert "expected the word foo" in got.feedback
    assert "does not have the required form (rule 1)" in got.feedback


def test_scores_through_score_rollout():
    got = asyncio.run(score_rollout(make_scorer("rules", rules=[{"min_chars": 2}]), task(),
                                    rollout("ok")))
    assert got.hard == 1.0


BAD = [
    ("notalist", "config rules: expected a list of rules, got str"),
    ([{"contains": "a"}, "b"], "config rules: rule 2: expected a mapping"),
    ([{"regexp": "a"}], "rule 1: unknown key(s) regexp"),
    ([{"contains": "a", "regex": "b"}], "rule 1: expected exactly one kind"),
    ([{"describe": "x"}], "rule 1: expected exactly one kind"),
    ([{"regex": "(unclosed"}], "rule 1 (regex): not a valid regular expression"),
    ([{"min_chars": -1}], "rule 1 (min_chars): expected a whole number >= 0"),
    ([{"max_chars": True}], "rule 1 (max_chars): expected a whole number >= 0"),
    ([{"no_refusal": False}], "rule 1 (no_refusal): expected true"),
    ([{"tool_called": " "}], "rule 1 (tool_called): expected non-empty text"),
    ([{"contains": "a", "ignore_case": "yes"}], "rule 1 (contains): 'ignore_case' must be"),
]


@pytest.mark.parametrize(("rules", "message"), BAD)
def test_config_errors_name_the_bad_rule_in_one_line(rules, message):
    with pytest.raises(ScorerError) as info:
        make_scorer("rules", rules=rules)
    text = str(info.value)
    assert text.startswith("scorer 'rules': ") and message in text and "\n" not in text
    assert "(unclosed" not in text


def test_task_rule_errors_and_missing_rules_name_the_task():
    scorer = make_scorer("rules")
    with pytest.raises(ScorerError, match=r"task 'bad' rules: rule 1 \(min_chars\)"):
        scorer.score(task([{"min_chars": "ten"}], tid="bad"), rollout("x"))
    with pytest.raises(ScorerError, match="task 'none': no rules to score it by"):
        scorer.score(task(tid="none"), rollout("x"))
    with pytest.raises(ScorerError, match="not JSON"):
        scorer.score(task("contains x"), rollout("x"))
    with pytest.raises(ScorerError, match="unknown option"):
        make_scorer("rules", rulez=[])
