"""Built-in scorers, user scorers from `module:function`, and score coercion."""

from __future__ import annotations

import asyncio

import pytest

from skilltrain.data import Task
from skilltrain.records import Rollout, Score
from skilltrain.scoring import (
    Choice,
    FunctionScorer,
    Numeric,
    ScorerError,
    coerce_score,
    make_scorer,
    normalize,
    score_rollout,
)


def judge(scorer, reference, answer) -> Score:
    task = Task(id="t1", input="q", answer=reference)
    result = scorer.score(task, Rollout(task_id="t1", skill_hash="h", answer=answer))
    if not isinstance(result, Score):
        result = asyncio.run(result)
    return result


def hs(score: Score) -> tuple[float, float]:
    return score.hard, score.soft


def test_normalize():
    assert normalize("  The  ANSWER, is: 42! ") == "the answer is 42"


def test_exact():
    exact = make_scorer("exact")
    assert hs(judge(exact, "Paris", " Paris\n")) == (1.0, 1.0)
    near = judge(exact, "Paris", "paris.")
    assert hs(near) == (0.0, 0.5) and "case/punctuation" in near.feedback
    wrong = judge(exact, "Paris", "London")
    assert hs(wrong) == (0.0, 0.0)
    assert "'Paris'" in wrong.feedback and "'London'" in wrong.feedback
    assert judge(exact, "Paris", "Paris").feedback == "correct"
    assert hs(judge(exact, 42, "42")) == (1.0, 1.0)  # non-string references compare as text


def test_normalized():
    scorer = make_scorer("normalized")
    assert hs(judge(scorer, "the answer", "The  Answer!")) == (1.0, 1.0)
    assert hs(judge(scorer, "the answer", "an answer")) == (0.0, 0.0)


def test_numeric_exact_and_formats():
    scorer = make_scorer("numeric")
    assert hs(judge(scorer, "42", "42")) == (1.0, 1.0)
    assert hs(judge(scorer, "42", " 42.0 ")) == (1.0, 1.0)
    assert hs(judge(scorer, "1234", "1,234")) == (1.0, 1.0)
    assert hs(judge(scorer, "-5", "-5")) == (1.0, 1.0)
    assert hs(judge(scorer, "42", "43")) == (0.0, 0.0)
    assert hs(judge(scorer, "42", "no number")) == (0.0, 0.0)


def test_numeric_soft_credit_for_number_in_text():
    scorer = make_scorer("numeric")
    score = judge(scorer, "42", "The answer is 42.")
    assert hs(score) == (0.0, 0.5) and "extra text" in score.feedback
    assert hs(judge(scorer, "1234.5", "Total: 1,234.5 dollars")) == (0.0, 0.5)
    assert hs(judge(scorer, "42", "42 is wrong, it is 41")) == (0.0, 0.0)  # the last number counts


def test_numeric_tolerance():
    default = make_scorer("numeric")
    assert judge(default, "1", "1.0000001").hard == 1.0
    assert judge(default, "1", "1.001").hard == 0.0
    loose = make_scorer("numeric", tolerance=0.5)
    assert judge(loose, "42", "42.4").hard == 1.0
    assert judge(loose, "42", "42.6").hard == 0.0
    rel = make_scorer("numeric", tolerance=0.01, relative=True)
    assert judge(rel, "1000", "1009").hard == 1.0
    assert judge(rel, "1000", "1011").hard == 0.0
    assert judge(rel, "10", "10.2").hard == 0.0


def test_numeric_reference_must_be_a_number():
    with pytest.raises(ScorerError, match="not a number"):
        judge(Numeric(), "forty-two", "42")


def test_contains():
    scorer = make_scorer("contains")
    assert judge(scorer, "Paris", "I believe it is paris, France.").hard == 1.0
    assert judge(scorer, " Paris ", "Lyon").hard == 0.0


def test_regex_reference_pattern_and_fixed_pattern():
    scorer = make_scorer("regex")
    assert judge(scorer, r"^4\d$", "42").hard == 1.0
    assert judge(scorer, r"^4\d$", "52").hard == 0.0
    fixed = make_scorer("regex", pattern=r"\d+")
    assert judge(fixed, "ignored", "abc 42").hard == 1.0
    full = make_scorer("regex", pattern=r"\d+", full=True)
    assert judge(full, "ignored", " 42 ").hard == 1.0
    miss = judge(full, "ignored", "42abc")
    assert hs(miss) == (0.0, 0.0) and "does not match" in miss.feedback


def test_f1():
    scorer = make_scorer("f1")
    partial = judge(scorer, "cat sat", "the cat sat")
    assert partial.hard == 0.0 and partial.soft == pytest.approx(0.8)
    assert hs(judge(scorer, "The cat sat.", "the cat sat")) == (1.0, 1.0)
    assert hs(judge(scorer, "cat", "dog")) == (0.0, 0.0)
    assert judge(make_scorer("f1", threshold=0.8), "cat sat", "the cat sat").hard == 1.0


@pytest.mark.parametrize("answer", ["B", "(B)", "b", "B) the second", "Answer: B",
                                    "The answer is B."])
def test_choice_correct(answer):
    assert judge(Choice(), "B", answer).hard == 1.0


@pytest.mark.parametrize("answer", ["C", "(A)", "Answer: D"])
def test_choice_wrong(answer):
    assert judge(Choice(), "B", answer).hard == 0.0


def test_choice_no_letter_says_so():
    score = judge(Choice(), "B", "none of these")
    assert score.hard == 0.0 and "no option letter" in score.feedback


@pytest.mark.parametrize("answer", ["I think the answer is C", "A good guess is C."])
def test_choice_ignores_pronoun_and_article(answer):
    # "I" and "A" here are words, not options; the chosen option is C.
    assert judge(Choice(), "C", answer).hard == 1.0


def test_make_scorer_unknown_name():
    with pytest.raises(ScorerError) as info:
        make_scorer("levenshtein")
    assert "'levenshtein'" in str(info.value) and "exact" in str(info.value)


def test_make_scorer_bad_option_names_accepted_ones():
    with pytest.raises(ScorerError) as info:
        make_scorer("numeric", tolerence=0.1)
    msg = str(info.value)
    assert "tolerence" in msg and "tolerance" in msg and "relative" in msg


def test_module_function_scorer(tmp_path, monkeypatch):
    (tmp_path / "my_scorers_mod.py").write_text(
        "from skilltrain.records import Score\n"
        "def by_bool(task, answer):\n    return answer.strip() == task.answer\n"
        "def by_dict(task, answer):\n"
        "    return {'hard': 0, 'soft': 0.25, 'feedback': 'close: ' + answer}\n"
        "def by_score(task, answer):\n    return Score(hard=1, soft=1, feedback='ok')\n"
        "async def by_async(task, answer):\n    return 0.75\n"
        "NOT_CALLABLE = 3\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = make_scorer("my_scorers_mod:by_bool")
    assert isinstance(scorer, FunctionScorer) and scorer.label == "my_scorers_mod:by_bool"
    assert hs(judge(scorer, "yes", " yes ")) == (1.0, 1.0)
    assert hs(judge(scorer, "yes", "no")) == (0.0, 0.0)
    d = judge(make_scorer("python:my_scorers_mod:by_dict"), "x", "y")
    assert (d.hard, d.soft, d.feedback) == (0.0, 0.25, "close: y")
    assert judge(make_scorer("my_scorers_mod:by_score"), "x", "y").feedback == "ok"
    assert hs(judge(make_scorer("my_scorers_mod:by_async"), "x", "y")) == (0.75, 0.75)
    with pytest.raises(ScorerError, match="no function 'NOT_CALLABLE'"):
        make_scorer("my_scorers_mod:NOT_CALLABLE")
    with pytest.raises(ScorerError, match="no function 'missing'"):
        make_scorer("my_scorers_mod:missing")
    with pytest.raises(ScorerError, match="cannot import module 'no_such_module_xyz'"):
        make_scorer("no_such_module_xyz:f")


def test_make_scorer_accepts_callables_and_scorer_objects():
    def lenient(task, answer):
        return 1.0

    assert judge(make_scorer(lenient), "a", "b").hard == 1.0
    exact = make_scorer("exact")
    assert make_scorer(exact) is exact
    with pytest.raises(ScorerError):
        make_scorer(42)


def test_score_rollout_awaits_and_coerces():
    async def half(task, answer):
        return 0.5

    task = Task(id="t", input="q", answer="a")
    rollout = Rollout(task_id="t", skill_hash="h", answer="a")
    assert asyncio.run(score_rollout(make_scorer(half), task, rollout)).hard == 0.5
    assert asyncio.run(score_rollout(make_scorer("exact"), task, rollout)).hard == 1.0


def test_coerce_score():
    assert hs(coerce_score(True)) == (1.0, 1.0)
    assert hs(coerce_score(False)) == (0.0, 0.0)
    assert hs(coerce_score(0.3)) == (0.3, 0.3)
    assert hs(coerce_score(1)) == (1.0, 1.0)
    assert hs(coerce_score({"hard": 1})) == (1.0, 1.0)
    d = coerce_score({"hard": 0, "soft": 0.4, "feedback": "f"})
    assert (d.hard, d.soft, d.feedback) == (0.0, 0.4, "f")
    s = Score(hard=1, soft=0.5)
    assert coerce_score(s) is s


@pytest.mark.parametrize("bad", [1.5, -0.1, 2])
def test_coerce_score_out_of_range(bad):
    with pytest.raises(ScorerError, match=r"my_fn: returned .* expected a number in \[0, 1\]"):
        coerce_score(bad, "my_fn")


@pytest.mark.parametrize("bad", ["yes", None, {"soft": 1}, [1]])
def test_coerce_score_wrong_type(bad):
    with pytest.raises(ScorerError, match="my_fn: returned"):
        coerce_score(bad, "my_fn")


@pytest.mark.parametrize("bad", [{"hard": 2}, {"hard": 1, "soft": -0.5}, {"hard": "yes"}])
def test_coerce_score_bad_dict_names_the_scorer(bad):
    # Same contract as for numbers: a ScorerError that names the user's scorer, not a bare
    # pydantic/float error from deep inside.
    with pytest.raises(ScorerError, match="my_fn: "):
        coerce_score(bad, "my_fn")
