"""The benchmark scorers on hand-computed cases (values worked out in the comments)."""

from __future__ import annotations

import pytest

from skilltrain.bench_scorers import (
    anls_similarity,
    extract_answer,
    levenshtein,
    office_tokens,
    squad_normalize,
)
from skilltrain.data import Task
from skilltrain.records import Rollout
from skilltrain.scoring import ScorerError, make_scorer


def judge(name: str, reference, reply: str, **options):
    task = Task(id="t", input="q", answer=reference)
    return make_scorer(name, **options).score(task, Rollout(task_id="t", skill_hash="h",
                                                            answer=reply))


def test_answer_comes_from_the_last_tag_else_the_last_line():
    assert extract_answer("I think <answer>Paris</answer>, no: <answer> Lyon </answer>") == "Lyon"
    assert extract_answer("Reasoning here.\n\nLyon\n  \n") == "Lyon"
    assert extract_answer("") == ""


def test_squad_normalisation_drops_articles_punctuation_and_case():
    assert squad_normalize("The  Eiffel-Tower, an icon!") == "eiffeltower icon"
    assert squad_normalize("Theatre") == "theatre"  # 'the' only as a whole word


def test_squad_exact_match_and_partial_f1():
    s = judge("squad", "the Denver Broncos", "<answer>Denver Broncos.</answer>")
    assert (s.hard, s.soft) == (1.0, 1.0)
    # got {denver, broncos, team} vs want {denver, broncos}: P = 2/3, R = 1, F1 = 0.8
    s = judge("squad", "Denver Broncos", "<answer>the Denver Broncos team</answer>")
    assert s.hard == 0.0 and s.soft == pytest.approx(0.8)
    # no shared token: F1 0
    assert judge("squad", "Paris", "<answer>London</answer>").soft == 0.0


def test_squad_takes_the_best_of_several_references():
    # list: 'broncos' vs ['denver broncos' (F1 2/3), 'broncos' (exact)]
    assert judge("squad", ["Denver Broncos", "Broncos"], "<answer>Broncos</answer>").hard == 1.0
    # '|'-separated: 'denver' vs 'denver broncos' P=1 R=1/2 F1=2/3, vs 'broncos' 0
    s = judge("squad", "Denver Broncos|Broncos", "<answer>Denver</answer>")
    assert s.hard == 0.0 and s.soft == pytest.approx(0.6667)


def test_levenshtein_and_anls_threshold_boundary():
    assert levenshtein("kitten", "sitting") == 3
    # 'abcd' vs 'abxy': distance 2 of 4 = NL 0.5, not below the threshold: 0
    assert anls_similarity("abcd", "abxy") == 0.0
    # 'abcde' vs 'abcxy': NL 2/5 = 0.4 < 0.5: 1 - 0.4 = 0.6
    assert anls_similarity("abcde", "abcxy") == pytest.approx(0.6)
    # case and whitespace do not count
    assert anls_similarity("  Total  AMOUNT", "total amount") == 1.0


def test_anls_scorer_hard_only_when_exact_and_best_reference():
    s = judge("anls", "$12.50", "<answer>$12.5O</answer>")  # one OCR slip of 6: 5/6
    assert s.hard == 0.0 and s.soft == pytest.approx(0.8333)
    s = judge("anls", ["1 May 2020", "01/05/2020"], "<answer>01/05/2020</answer>")
    assert (s.hard, s.soft) == (1.0, 1.0)
    assert judge("anls", "invoice", "<answer>receipt</answer>").soft == 0.0


def test_officeqa_numbers_with_scale_units_and_separators():
    assert office_tokens("$1.2 billion") == ["1200000000"]
    assert office_tokens("1,200 million") == ["1200000000"]
    assert office_tokens("12,00") == ["12,00"]  # not a thousands separator: not 1200
    for reply in ("$1.2 billion", "1,200 million", "1200000000", "USD 1.2bn"):
        assert judge("officeqa", "1200000000", f"<answer>{reply}</answer>").hard == 1.0, reply
    assert judge("officeqa", "$1.2 billion", "<answer>1.3 billion</answer>").hard == 0.0
    assert judge("officeqa", "5%", "<answer>5 percent</answer>").hard == 1.0


def test_officeqa_tolerance_and_partial_f1():
    assert judge("officeqa", "100", "<answer>100.4</answer>").hard == 0.0
    assert judge("officeqa", "100", "<answer>100.4</answer>", tolerance=0.01).hard == 1.0
    # tokens [revenue, was, 1200000000] vs [1200000000]: P = 1/3, R = 1, F1 = 0.5
    s = judge("officeqa", "1.2 billion", "<answer>revenue was $1,200 million</answer>")
    assert s.hard == 0.0 and s.soft == pytest.approx(0.5)


def test_reward_scorer_reads_the_episode():
    def scored(event):
        task = Task(id="t", input="q", answer="")
        rollout = Rollout(task_id="t", skill_hash="h", trajectory=[event] if event else [])
        return make_scorer("reward").score(task, rollout)

    won = scored({"role": "harness", "event": "episode", "reward": 1.0, "done": True})
    partial = scored({"role": "harness", "event": "episode", "reward": 0.3, "done": False,
                      "steps": 5})
    done_small = scored({"role": "harness", "event": "episode", "reward": 0.3, "done": True})
    assert (won.hard, partial.hard, partial.soft, done_small.hard) == (1.0, 0.0, 0.3, 1.0)
    missing = scored(None)
    assert missing.hard == 0.0 and "harness: environment" in missing.feedback


def test_bench_scorer_unknown_option_is_one_line():
    with pytest.raises(ScorerError, match="accepted: threshold, hard_at"):
        make_scorer("anls", tolerance=1)
