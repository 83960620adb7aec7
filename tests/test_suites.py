"""Built-in suites: they build, split deterministically, keep splits apart, start from a skill that
does not give the rule away, and score the reference answer right and a wrong one wrong."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import pickle
import re
import subprocess
import sys

import pytest

from skilltrain.data import Splits, Task
from skilltrain.records import Rollout
from skilltrain.scoring import make_scorer, score_rollout
from skilltrain.skill import Skill
from skilltrain.suites import get_suite, gym, house, list_suites
from skilltrain.suites.base import SuiteError
from skilltrain.suites.registry import builtin_suites

HAS_GYM = importlib.util.find_spec("reasoning_gym") is not None
NO_GYM = f"reasoning-gym is not installed ({gym.INSTALL})"
ALL = list(builtin_suites())
HOUSE = [name for name in ALL if name.startswith("house-")]
GYM = [name for name in ALL if name.startswith("gym-")]
MINE = HOUSE + GYM  # chat suites with string answers; others (spreadsheet) test themselves

# Words and patterns that would give each suite's rule away; none may be in the starting skill.
RULE_MARKERS = {
    "house-number": ("digit", "separator", "only the number", "no units"),
    "house-tiny": ("digit", "separator", "only the number", "no units"),
    "house-date": ("dd", "mm", "yyyy", "dot", "two-digit"),
    "house-route": ("lawyer", "legal", "vip", "1,000", "password", "invoice", "laptop", "first"),
    "gym-leg-counting": ("woodlouse", "starfish", "table", "<answer>"),
    "gym-word-sorting": ("ascii", "capital", "upper"),
    "gym-arithmetic": ("before", "precedence", "integer", "only"),
}


def _param(names: list[str]) -> list:
    return [
        pytest.param(n, marks=pytest.mark.skipif(n.startswith("gym-") and not HAS_GYM,
                                                 reason=NO_GYM))
        for n in names
    ]


@pytest.fixture(scope="module")
def built() -> dict[str, Splits]:
    """Build each suite once per module (gym suites only when the package is there)."""
    return {name: builtin_suites()[name].build(0) for name in MINE
            if HAS_GYM or not name.startswith("gym-")}


def _score(suite_name: str, task: Task, answer: str):
    scorer = make_scorer(builtin_suites()[suite_name].scorer)
    rollout = Rollout(task_id=task.id, skill_hash="x", answer=answer)
    return asyncio.run(score_rollout(scorer, task, rollout))


# -- the registry -----------------------------------------------------------------------------

def test_registry_lists_the_required_suites() -> None:
    assert len(HOUSE) >= 3 + 1  # three house conventions and the tiny CI suite
    assert {"house-number", "house-date", "house-route", "house-tiny"} <= set(HOUSE)
    assert len(GYM) >= 2
    assert [s.name for s in list_suites()] == ALL
    assert get_suite("house-date").name == "house-date"
    with pytest.raises(SuiteError, match="unknown"):
        get_suite("no-such-suite")


def test_registry_returns_fresh_objects() -> None:
    first, second = builtin_suites(), builtin_suites()
    assert first is not second
    first.pop("house-number")
    assert "house-number" in builtin_suites()


def test_suite_records_are_consistent() -> None:
    for name, suite in builtin_suites().items():
        assert suite.name == name
        assert suite.description
        assert Skill(suite.skill).name == name
    for name in MINE:
        suite = builtin_suites()[name]
        assert suite.harness == "chat"
        assert suite.needs == ("suites" if name.startswith("gym-") else None)


def test_listing_suites_does_not_import_reasoning_gym() -> None:
    code = ("import sys; from skilltrain.suites import list_suites; list_suites(); "
            "print('reasoning_gym' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_gym_suite_without_the_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # makes the import fail
    with pytest.raises(SuiteError, match="pip install"):
        builtin_suites()[GYM[0]].build(0)


# -- splits -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", _param(MINE))
def test_splits_have_the_default_sizes(name: str, built: dict[str, Splits]) -> None:
    splits = built[name]
    sizes = (8, 6, 6) if name == "house-tiny" else (60, 30, 30)
    assert (len(splits.train), len(splits.val), len(splits.test)) == sizes
    ids = [t.id for t in splits.all()]
    assert len(ids) == len(set(ids))
    assert all(isinstance(t.answer, str) and t.answer.strip() for t in splits.all())
    assert all(t.input.strip() and len(t.input) < 600 for t in splits.all())


@pytest.mark.parametrize("name", _param(MINE))
def test_splits_are_deterministic_per_seed(name: str, built: dict[str, Splits]) -> None:
    suite = builtin_suites()[name]
    again = suite.build(0)
    assert again == built[name]
    other = suite.build(1)
    assert [t.input for t in other.all()] != [t.input for t in again.all()]


@pytest.mark.parametrize("name", _param(MINE))
def test_no_input_is_in_two_splits(name: str, built: dict[str, Splits]) -> None:
    splits = built[name]
    train, val, test = ({t.input for t in part} for part in (splits.train, splits.val, splits.test))
    assert len(train) == len(splits.train) and len(val) == len(splits.val)
    assert len(test) == len(splits.test)
    assert not (train & val) and not (train & test) and not (val & test)


@pytest.mark.parametrize("name", HOUSE)
def test_house_items_differ_by_more_than_a_name(name: str, built: dict[str, Splits]) -> None:
    keys = [house.item_key(t.input) for t in built[name].all()]
    assert len(keys) == len(set(keys))
    assert house.item_key("Ticket from Ana: Ben owns two cards.") == \
        "Ticket from someone: someone owns two cards."


@pytest.mark.parametrize("name", HOUSE)
def test_every_type_is_in_every_house_split(name: str, built: dict[str, Splits]) -> None:
    splits = built[name]
    kinds = {t.type for t in splits.all()}
    assert len(kinds) >= 5
    if name != "house-tiny":
        for part in (splits.train, splits.val, splits.test):
            assert {t.type for t in part} == kinds


def test_size_is_a_parameter_and_test_is_stable() -> None:
    small = house.number_suite(train=10, val=5, test=5).build(3)
    large = house.number_suite(train=40, val=5, test=5).build(3)
    assert (len(small.train), len(small.val), len(small.test)) == (10, 5, 5)
    assert len(large.train) == 40
    assert small.test == large.test and small.val == large.val


# -- the starting skill -----------------------------------------------------------------------

@pytest.mark.parametrize("name", MINE)
def test_starting_skill_is_valid_and_does_not_give_the_rule_away(name: str) -> None:
    skill = Skill(builtin_suites()[name].skill)
    skill.validate()
    assert skill.description and skill.body.strip()
    assert not re.search(r"\d", skill.text), "a digit in the skill could be a rule or an example"
    body = skill.body.lower()
    for marker in RULE_MARKERS[name]:
        assert marker not in body, f"{name}: the starting skill mentions {marker!r}"


@pytest.mark.parametrize("name", [n for n in MINE if n in {**house.REFERENCE_SKILLS,
                                                          **gym.REFERENCE_SKILLS}])
def test_reference_skill_states_the_rule(name: str) -> None:
    """The markers above are meaningful: the hand-written good skill does contain them."""
    reference = {**house.REFERENCE_SKILLS, **gym.REFERENCE_SKILLS}[name]
    skill = Skill(reference)
    skill.validate()
    assert skill.name == name
    assert any(marker in skill.body.lower() for marker in RULE_MARKERS[name])


# -- scoring ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", _param(MINE))
def test_reference_answer_scores_and_wrong_answers_do_not(name: str,
                                                          built: dict[str, Splits]) -> None:
    for task in built[name].test:
        right = _score(name, task, task.answer)
        assert right.hard == 1.0 and right.soft == 1.0, (task, right)
        wrong = _score(name, task, "I do not know.")
        assert wrong.hard == 0.0 and wrong.soft < 1.0, (task, wrong)
        assert wrong.feedback and task.answer[:20] in wrong.feedback
        chatty = _score(name, task, f"The answer is: {task.answer}")
        assert chatty.hard == 0.0, (task, chatty)


@pytest.mark.parametrize("name", _param(GYM))
def test_gym_scores_the_answer_tag(name: str, built: dict[str, Splits]) -> None:
    task = built[name].train[0]
    tagged = _score(name, task, f"Let me work it out.\n<answer>{task.answer}</answer>")
    assert tagged.hard == 1.0
    assert _score(name, task, "<answer>nonsense</answer>").hard == 0.0


@pytest.mark.skipif(not HAS_GYM, reason=NO_GYM)
def test_gym_scorer_survives_pickling(built: dict[str, Splits]) -> None:
    suite = builtin_suites()[GYM[0]]
    task = built[GYM[0]].test[0]
    make_scorer(suite.scorer).score(task, Rollout(task_id=task.id, skill_hash="x", answer="0"))
    copy = pickle.loads(pickle.dumps(suite.scorer))
    assert copy == suite.scorer
    assert copy.score(task, Rollout(task_id=task.id, skill_hash="x",
                                    answer=task.answer)).hard == 1.0


def test_house_number_answers_are_bare_digits(built: dict[str, Splits]) -> None:
    assert all(t.answer.isdigit() for t in built["house-number"].all())
    assert any(int(t.answer) >= 1000 for t in built["house-number"].test)
    assert _score("house-number", Task("t", "q", "3600"), "3,600").soft == 0.5


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


def test_house_date_answers_are_the_dates_shown(built: dict[str, Splits]) -> None:
    for task in built["house-date"].all():
        assert re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", task.answer)
        day = dt.datetime.strptime(task.answer, "%d.%m.%Y").date()
        shown = task.input.split(": ", 1)[1]
        if task.type == "iso":
            assert shown == day.isoformat()
        else:
            month = MONTHS[day.month - 1]
            assert (month if task.type != "abbreviated" else month[:3]) in shown
            assert re.search(rf"\b{day.day}(?:st|nd|rd|th)?\b", shown)
            assert str(day.year) in shown


def test_house_route_answers_follow_the_rules(built: dict[str, Splits]) -> None:
    expected = {"access": "Q-ACCESS", "ledger": "Q-LEDGER", "hardware": "Q-HARDWARE",
                "general": "Q-GENERAL", "escalate": "Q-ESCALATE", "amount": "Q-ESCALATE"}
    for task in built["house-route"].all():
        assert task.answer in house.QUEUES
        assert task.answer == house.route(task.input)
        if task.type in expected:
            assert task.answer == expected[task.type]
    assert house.route("Ticket from A: I was charged twice. Also, my laptop is dead.") == "Q-LEDGER"
    assert house.route("Ticket from A: My password expired. Also, a refund please.") == "Q-ACCESS"
    assert house.route("Ticket from A: A refund of $1,200, please.") == "Q-ESCALATE"
    assert house.route("Ticket from A: A refund of $1,000, please.") == "Q-LEDGER"
