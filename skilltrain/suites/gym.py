"""Suites from `reasoning-gym` (pinned: reasoning-gym==0.1.25, the `skilltrain[suites]` extra).

reasoning-gym ships procedural generators with their own scorers, so these suites test a skill
on tasks we did not write and judge them the way their authors do. We pick families where
following a procedure is what separates right from wrong, and shrink them so that a 0.5B-1.5B
model is not hopeless:

- `leg_counting`: a fixed legs-per-animal table (a woodlouse has 14, a starfish 5) plus multiply
  and add. A skill can carry the table and the procedure; the model cannot know the table.
- `word_sorting`: ASCII order, where every capitalised word sorts before every lower-case one,
  compared letter by letter, answered as a comma-separated list. The scorer gives partial credit.
- `basic_arithmetic`: one-digit terms joined by +, - and *; multiplication binds first, and the
  answer is a bare integer. The 0.5B model computes most of these but answers in sentences.

Measured with the 0.5B target on 30 test items (bench/suite_probe.py): `basic_arithmetic` 0.00
with no skill and with the starting skill, 0.57 with the reference skill (precedence items stay
at 0). On a few items each, `word_sorting` stays at 0 hard (about 0.25 soft) and `leg_counting`
at 0 even with the legs table: those two are for larger targets (1.5B and up).

The package is imported only when a suite is built or scored, so listing suites never needs it.
Following reasoning-gym's own evaluation, an answer wrapped in `<answer>...</answer>` is scored
on the tag's content, which lets a skill ask for brief working before the final answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from skilltrain.data import Splits, Task
from skilltrain.records import Rollout, Score
from skilltrain.suites.base import Suite, SuiteError

PIN = "reasoning-gym==0.1.25"
INSTALL = f"pip install 'skilltrain[suites]' (or: pip install {PIN})"


def _gym() -> Any:
    """Import reasoning_gym, or say how to install it."""
    try:
        import reasoning_gym
    except ImportError:
        raise SuiteError(f"reasoning-gym suites need the package {PIN}; install it with: "
                         f"{INSTALL}") from None
    return reasoning_gym


def _extract(reply: str) -> tuple[str, bool]:
    """The last `<answer>` tag's content if there is one, else the whole reply."""
    from reasoning_gym.utils import extract_answer

    tagged = extract_answer(reply)
    return (tagged, True) if tagged is not None else (reply.strip(), False)


def _clip(text: str, n: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass(frozen=True)
class GymScorer:
    """Scores with the family's own `score_answer`: hard is 1 only for a full score.

    It keeps the family and its configuration and rebuilds the dataset on first use, so it
    stays a small, comparable value; the task's reasoning-gym metadata travels in `Task.meta`.
    """

    dataset: str
    config: tuple[tuple[str, Any], ...] = ()
    _score_fn: list[Callable[..., float]] = field(default_factory=list, init=False, repr=False,
                                                   compare=False)

    def _fn(self) -> Callable[..., float]:
        if not self._score_fn:
            data = _gym().create_dataset(self.dataset, size=1, seed=0, **dict(self.config))
            self._score_fn.append(data.score_answer)
        return self._score_fn[0]

    def score(self, task: Task, rollout: Rollout) -> Score:
        score_answer = self._fn()
        got, tagged = _extract(rollout.answer)
        entry = {"question": task.input, "answer": task.answer,
                 "metadata": dict(task.meta.get("metadata", {}))}
        value = min(1.0, max(0.0, float(score_answer(got, entry))))
        ok = value >= 1.0
        if ok:
            feedback = "correct"
        else:
            feedback = f"expected {_clip(task.answer)!r}, got {_clip(got)!r} (score {value:.2f})"
            if tagged:
                feedback += "; scored the <answer> tag's content"
        return Score(hard=1.0 if ok else 0.0, soft=value, feedback=feedback)

    def __getstate__(self) -> dict[str, Any]:  # the bound method is rebuilt, not pickled
        return {"dataset": self.dataset, "config": self.config, "_score_fn": []}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


# -- task types: what a per-type breakdown should separate ------------------------------------

def _legs_type(meta: Mapping[str, Any]) -> str:
    """'unusual' when an animal with 0, 5, 10 or 14 legs appears: only the table knows those."""
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    odd = any(ANIMALS.get(animal) in (0, 5, 10, 14) for animal in meta.get("animals", {}))
    return "unusual" if odd else "usual"


def _sorting_type(meta: Mapping[str, Any]) -> str:
    """Direction, and whether capitals take part (they sort before every lower-case word)."""
    words = meta.get("transformed_words", [])
    capitals = any(w[:1].isupper() for w in words) and any(w[:1].islower() for w in words)
    return f"{meta.get('direction', 'unknown')}{'-capitals' if capitals else ''}"


def _arithmetic_type(meta: Mapping[str, Any]) -> str:
    """'precedence' when * meets + or -, which is where left-to-right evaluation goes wrong."""
    ops = set(str(meta.get("expression", "")).split()) & {"+", "-", "*"}
    if "*" in ops:
        return "precedence" if len(ops) > 1 else "multiply"
    return "add-subtract"


@dataclass(frozen=True)
class Family:
    """One reasoning-gym family as a suite: the dataset, its (shrunk) config, and a type rule."""

    suite: str
    dataset: str
    config: tuple[tuple[str, Any], ...]
    kind: Callable[[Mapping[str, Any]], str]
    description: str
    skill: str


def draw_splits(family: Family, seed: int, train: int, val: int, test: int) -> Splits:
    """Each split comes from its own dataset seed, derived from the suite seed; questions already
    drawn for an earlier split are skipped, so no question is in two splits."""
    gym = _gym()
    seen: set[str] = set()
    drawn: dict[str, list[Task]] = {}
    for split, size in (("test", test), ("val", val), ("train", train)):
        data_seed = random.Random(f"{family.suite}:{seed}:{split}").randrange(2**31)
        data = gym.create_dataset(family.dataset, size=3 * size + 20, seed=data_seed,
                                  **dict(family.config))
        tasks: list[Task] = []
        for entry in data:
            if len(tasks) == size:
                break
            question = entry["question"].strip()
            if question in seen:
                continue
            seen.add(question)
            meta = json.loads(json.dumps(entry["metadata"]))  # plain JSON: tuples become lists
            tasks.append(Task(id=f"{family.suite}-{split}-{len(tasks):03d}", input=question,
                              answer=str(entry["answer"]), type=family.kind(meta),
                              meta={"dataset": family.dataset, "metadata": meta}))
        if len(tasks) < size:
            raise SuiteError(f"suite {family.suite}: only {len(tasks)} distinct {split} tasks")
        drawn[split] = tasks
    return Splits(drawn["train"], drawn["val"], drawn["test"])


@dataclass(frozen=True)
class _Build:
    family: Family
    train: int
    val: int
    test: int

    def __call__(self, seed: int) -> Splits:
        return draw_splits(self.family, seed, self.train, self.val, self.test)


def _front(name: str, description: str, body: str) -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\n\n{body.strip()}\n"


LEGS = Family(
    suite="gym-leg-counting", dataset="leg_counting",
    config=(("min_animals", 2), ("max_animals", 3), ("min_instances", 1), ("max_instances", 5)),
    kind=_legs_type,
    description="reasoning-gym leg_counting (2-3 kinds of animal): count legs; for 1.5B+.",
    skill=_front("gym-leg-counting", "Count animal legs.",
                 "# Leg counting\n\nAnswer the question."),
)
SORTING = Family(
    suite="gym-word-sorting", dataset="word_sorting",
    config=(("min_words", 3), ("max_words", 5), ("min_word_length", 3), ("max_word_length", 8)),
    kind=_sorting_type,
    description="reasoning-gym word_sorting (3-5 words): sort words by ASCII order.",
    skill=_front("gym-word-sorting", "Sort words.", "# Word sorting\n\nSort the words as asked."),
)
ARITHMETIC = Family(
    suite="gym-arithmetic", dataset="basic_arithmetic",
    config=(("min_terms", 2), ("max_terms", 3), ("min_digits", 1), ("max_digits", 1),
            ("operators", ("+", "-", "*")), ("allow_parentheses", False),
            ("allow_negation", False)),
    kind=_arithmetic_type,
    description="reasoning-gym basic_arithmetic (2-3 one-digit terms, + - *): compute a value.",
    skill=_front("gym-arithmetic", "Calculate arithmetic expressions.",
                 "# Arithmetic\n\nCalculate the expression."),
)
FAMILIES = (ARITHMETIC, LEGS, SORTING)

_LEGS_RULE = """# Leg counting

Legs per animal (use this table, not your memory):
- 0: snake, sea slug, jellyfish, flatworm, leech
- 2: chicken, bird, human, duck
- 4: dog, cat, cow, horse, lion, elephant, giraffe, tiger, deer, sheep
- 5: starfish
- 6: insect, ant, butterfly, beetle, bee, wasp, grasshopper, cricket, cockroach, praying mantis,
  firefly
- 8: spider, scorpion
- 10: crab, lobster, shrimp
- 14: woodlouse

Work line by line. First, for each animal, write "count x legs = subtotal" using the table.
Then add the subtotals. Last, write the total inside answer tags: <answer>total</answer>
"""

_SORTING_RULE = """# Word sorting

Sort by ASCII code, character by character: every word that starts with a capital letter comes
before every word that starts with a lower-case letter ("Zoo" < "apple"). If the first letters are
equal, compare the second, and so on; a word that is a prefix of another comes first.
Descending order is the exact reverse of ascending order.
Reply with only the sorted words separated by a comma and a space, e.g. Zoo, apple, art
"""

_ARITHMETIC_RULE = """# Arithmetic

Multiplication comes before addition and subtraction: in 2 + 3 * 4, first do 3 * 4.
Then add and subtract from left to right.
Reply with only the resulting integer (with a minus sign if it is negative), nothing else.
"""

REFERENCE_SKILLS = MappingProxyType({
    LEGS.suite: _front(LEGS.suite, "Count animal legs.", _LEGS_RULE),
    SORTING.suite: _front(SORTING.suite, "Sort words.", _SORTING_RULE),
    ARITHMETIC.suite: _front(ARITHMETIC.suite, "Calculate arithmetic expressions.",
                             _ARITHMETIC_RULE),
})


def family_suite(family: Family, train: int = 60, val: int = 30, test: int = 30) -> Suite:
    """A reasoning-gym family as a suite; building it needs the `suites` extra."""
    return Suite(
        name=family.suite, description=family.description, skill=family.skill,
        scorer=GymScorer(family.dataset, family.config),
        build=_Build(family, train, val, test), needs="suites",
    )


def suites() -> list[Suite]:
    """Every reasoning-gym suite with its default sizes (listing imports nothing)."""
    return [family_suite(family) for family in FAMILIES]
