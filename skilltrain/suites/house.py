"""House-convention suites: tasks whose right answer follows a rule only the skill can teach.

A model cannot guess a house number format, a house date format or made-up support queues, so
these suites measure what a skill adds rather than what the model already knows. Every task is
generated from a seed, so a suite needs no data files and every split is reproducible.

Each split is drawn from its own random stream (test first, then validation, then train) and
deduplicated against everything drawn before it (inputs that differ only by a person's name count
as one). Test therefore stays the same when the train size changes, and no item is in two splits.

The starting skills are deliberately weak: they name the task but not the rule, so training has
room to find it. `REFERENCE_SKILLS` holds hand-written skills that do state the rule; they exist
for benchmarks (how much can a skill lift this model?) and are never used for training.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from skilltrain.data import Splits, Task
from skilltrain.suites.base import Suite

# A generator draws one task of a given kind: (input, answer).
Maker = Callable[[random.Random, str], tuple[str, str]]

_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jo", "Kemal",
          "Lea", "Mira", "Nils", "Omar", "Pia")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cards", "shells", "stamps", "coins")


def _front(name: str, description: str, body: str) -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\n\n{body.strip()}\n"


_NAME_RE = re.compile(r"\b(?:" + "|".join(_NAMES) + r")\b")


def item_key(text: str) -> str:
    """An input with the people's names blanked: two tasks that differ only by a name are one
    item, so such near-copies never land in two splits (or twice in one)."""
    return _NAME_RE.sub("someone", text)


def draw_splits(name: str, make: Maker, kinds: tuple[str, ...], seed: int,
                train: int, val: int, test: int, key: Callable[[str], str] = item_key) -> Splits:
    """Draw the three splits of a generated suite.

    Kinds are assigned round-robin and then shuffled, so every split holds every kind in near
    equal numbers and a per-type breakdown compares like with like. `key` says when two inputs
    count as the same item.
    """
    seen: set[str] = set()
    drawn: dict[str, list[Task]] = {}
    for split, size in (("test", test), ("val", val), ("train", train)):
        rng = random.Random(f"{name}:{seed}:{split}")
        items: list[tuple[str, str, str]] = []
        tries = 0
        while len(items) < size:
            tries += 1
            if tries > 100 * size + 100:
                raise RuntimeError(f"suite {name}: cannot draw {size} distinct {split} tasks")
            kind = kinds[len(items) % len(kinds)]
            text, answer = make(rng, kind)
            if key(text) in seen:
                continue
            seen.add(key(text))
            items.append((text, answer, kind))
        rng.shuffle(items)
        drawn[split] = [
            Task(id=f"{name}-{split}-{i:03d}", input=text, answer=answer, type=kind)
            for i, (text, answer, kind) in enumerate(items)
        ]
    return Splits(drawn["train"], drawn["val"], drawn["test"])


@dataclass(frozen=True)
class _Build:
    """`seed -> Splits` for one generated suite; a plain object so a Suite stays picklable."""

    name: str
    make: Maker
    kinds: tuple[str, ...]
    train: int
    val: int
    test: int
    key: Callable[[str], str] = item_key

    def __call__(self, seed: int) -> Splits:
        return draw_splits(self.name, self.make, self.kinds, seed,
                           self.train, self.val, self.test, self.key)


# -- house-number: answer with the bare number ------------------------------------------------

NUMBER_KINDS = ("units", "money", "thousands", "words", "add", "multiply")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                 "seventeen", "eighteen", "nineteen", "twenty")
_UNITS = (("parcel", "weighs", "kg", "How heavy is the parcel"),
          ("road", "is", "km long", "How long is the road"),
          ("tank", "holds", "liters", "How much does the tank hold"),
          ("meeting", "lasts", "minutes", "How long is the meeting"),
          ("room", "measures", "square meters", "How big is the room"))


def make_number(rng: random.Random, kind: str) -> tuple[str, str]:
    """A short question whose answer is a non-negative integer that even a 0.5B model can read
    off or compute in one step; what it cannot know is how the house wants the number written."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    if kind == "units":
        thing, verb, unit, question = rng.choice(_UNITS)
        n = rng.randint(2, 95)
        return f"The {thing} {verb} {n} {unit}. {question}?", str(n)
    if kind == "money":
        n = rng.randint(2, 99)
        thing = rng.choice(("ticket", "lamp", "book", "scarf", "lunch", "repair"))
        return f"{name} paid ${n} for a {thing}. How much did the {thing} cost?", str(n)
    if kind == "thousands":
        n = rng.randint(1, 99) * 1000 + rng.choice((0, 100, 250, 500, 750))
        place = rng.choice(("town", "stadium", "library", "warehouse"))
        what = {"town": "residents", "stadium": "seats", "library": "books",
                "warehouse": "boxes"}[place]
        return f"The {place} has {n:,} {what}. How many {what} does it have?", str(n)
    if kind == "words":
        n = rng.randint(2, 20)
        return f"{name} owns {_NUMBER_WORDS[n]} {item}. How many {item} does {name} own?", str(n)
    if kind == "add":  # symbols, not a story: the 0.5B model sums "3 + 4" but not a story
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        return rng.choice((f"What is {a} + {b}?", f"Add {a} and {b}.")), str(a + b)
    if kind == "multiply":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return rng.choice((f"What is {a} x {b}?", f"What is {a} times {b}?")), str(a * b)
    raise ValueError(f"house-number: unknown kind {kind!r}")


# -- house-date: rewrite a date in the house format -------------------------------------------

DATE_KINDS = ("month-day-year", "day-month-year", "iso", "abbreviated", "ordinal", "weekday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FIRST_DAY = dt.date(1990, 1, 1).toordinal()
_LAST_DAY = dt.date(2035, 12, 31).toordinal()


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def house_date(day: dt.date) -> str:
    """The house format: two-digit day, two-digit month, four-digit year, joined by dots."""
    return f"{day.day:02d}.{day.month:02d}.{day.year}"


def make_date(rng: random.Random, kind: str) -> tuple[str, str]:
    """A date written one of several common ways; the answer is its house form."""
    day = dt.date.fromordinal(rng.randint(_FIRST_DAY, _LAST_DAY))
    month = _MONTHS[day.month - 1]  # not strftime: its names follow the locale
    shown = {
        "month-day-year": f"{month} {day.day}, {day.year}",
        "day-month-year": f"{day.day} {month} {day.year}",
        "iso": day.isoformat(),
        "abbreviated": f"{month[:3]} {day.day}, {day.year}",
        "ordinal": f"the {_ordinal(day.day)} of {month}, {day.year}",
        "weekday": f"{_WEEKDAYS[day.weekday()]}, {month} {day.day}, {day.year}",
    }
    if kind not in shown:
        raise ValueError(f"house-date: unknown kind {kind!r}")
    return f"Write this date in house format: {shown[kind]}", house_date(day)


# -- house-route: route a support ticket to a made-up queue -----------------------------------

ROUTE_KINDS = ("access", "ledger", "hardware", "general", "escalate", "amount", "mixed")
QUEUES = ("Q-ESCALATE", "Q-ACCESS", "Q-LEDGER", "Q-HARDWARE", "Q-GENERAL")
_RULES = (
    ("Q-ESCALATE", re.compile(r"\b(?:lawyer|legal|vip)\b", re.I)),
    ("Q-ACCESS", re.compile(r"\b(?:log in|password|locked|2fa|permission)\b", re.I)),
    ("Q-LEDGER", re.compile(r"\b(?:invoice|charged|refund|payment|billing)\b", re.I)),
    ("Q-HARDWARE", re.compile(r"\b(?:laptop|printer|monitor|keyboard|headset)\b", re.I)),
)
_AMOUNT_RE = re.compile(r"\$(\d[\d,]*)")
_TEAMS = ("design", "sales", "finance", "research", "support", "marketing")


def route(ticket: str) -> str:
    """The house routing rules, applied in priority order: the first match wins."""
    if any(int(m.replace(",", "")) > 1000 for m in _AMOUNT_RE.findall(ticket)):
        return "Q-ESCALATE"
    for queue, pattern in _RULES:
        if pattern.search(ticket):
            return queue
    return "Q-GENERAL"


def _topic_sentence(rng: random.Random, topic: str, big_amount: bool = False) -> str:
    n = rng.randint(2, 99)
    day, team = rng.choice(_WEEKDAYS[:5]), rng.choice(_TEAMS)
    amount = f"${rng.randint(11, 60) * 100:,}" if big_amount else f"${rng.randint(2, 99) * 10}"
    sentences = {
        "access": (
            f"I cannot log in to the portal since {day}.",
            "My password reset link has expired.",
            f"My account is locked after {n % 9 + 2} failed attempts.",
            f"I need permission to edit the {team} folder.",
            f"The 2FA code never arrives when I sign in from the {team} office.",
        ),
        "ledger": (
            f"I was charged twice for order {n}.",
            f"Please send me the invoice for order {n}.",
            f"I want a refund of {amount} for a cancelled order.",
            f"My payment of {amount} did not go through on {day}.",
            f"The billing name for the {team} team is wrong.",
        ),
        "hardware": (
            f"My laptop will not turn on since {day}.",
            f"The printer on floor {n % 9 + 1} keeps jamming.",
            "My monitor flickers every few minutes.",
            f"The keyboard at desk {n} is missing two keys.",
            f"My headset stopped working during the {team} call.",
        ),
        "general": (
            f"What are your opening hours on {day}?",
            f"Where can I find the guide for the {team} app?",
            "Can I change the language of the newsletter?",
            f"Do you offer a tour of the office for {n} visitors?",
            f"Who organises the {team} lunch on {day}?",
        ),
    }
    return rng.choice(sentences[topic])


def make_ticket(rng: random.Random, kind: str) -> tuple[str, str]:
    """A one- or two-sentence ticket; the answer comes from `route`, never from the template."""
    topics = ("access", "ledger", "hardware", "general")
    if kind in topics:
        body = _topic_sentence(rng, kind)
        expected = {"access": "Q-ACCESS", "ledger": "Q-LEDGER", "hardware": "Q-HARDWARE",
                    "general": "Q-GENERAL"}[kind]
    elif kind == "escalate":
        form = rng.randrange(3)
        inner = _topic_sentence(rng, rng.choice(topics))
        body = (f"VIP customer. {inner}",
                f"{inner} Our lawyer will follow up.",
                f"{inner} We are considering legal steps.")[form]
        expected = "Q-ESCALATE"
    elif kind == "amount":
        body = _topic_sentence(rng, "ledger", big_amount=True)
        while "$" not in body:
            body = _topic_sentence(rng, "ledger", big_amount=True)
        expected = "Q-ESCALATE"
    elif kind == "mixed":
        first, second = rng.sample(topics, 2)
        body = f"{_topic_sentence(rng, first)} Also, {_lower_first(_topic_sentence(rng, second))}"
        expected = None
    else:
        raise ValueError(f"house-route: unknown kind {kind!r}")
    text = f"Ticket from {rng.choice(_NAMES)}: {body}"
    answer = route(text)
    if expected is not None and answer != expected:  # a template that breaks its own rule
        raise RuntimeError(f"house-route: {text!r} routes to {answer}, expected {expected}")
    return text, answer


def _lower_first(text: str) -> str:
    return text if text.startswith(("I ", "2FA")) else text[:1].lower() + text[1:]


# -- skills -----------------------------------------------------------------------------------

NUMBER_SKILL = _front("house-number", "Answer short questions about numbers.",
                      "# Number questions\n\nAnswer the question.")
DATE_SKILL = _front("house-date", "Rewrite dates for the house records.",
                    "# Dates\n\nRewrite the date the user gives in the house format.")
ROUTE_SKILL = _front(
    "house-route", "Route support tickets to the right queue.",
    "# Ticket routing\n\nRead the support ticket and say which queue should handle it. "
    "The queues are Q-ACCESS, Q-ESCALATE, Q-GENERAL, Q-HARDWARE and Q-LEDGER.",
)

_NUMBER_RULE = """# Number questions

Reply with the answer as a bare number and nothing else.

- Digits only: no units, no currency signs, no words, no sentence, no working.
- Write numbers given in words as digits.
- No thousands separators and no trailing period.
"""

_DATE_RULE = """# Dates

Reply with the date in the house format DD.MM.YYYY and nothing else: no words, no final period.

1. Find the day, the month and the year. Ignore any weekday.
2. DD is the day with two digits: 5 becomes 05, 14 stays 14.
3. MM is the month number with two digits: January 01, February 02, March 03, April 04, May 05,
   June 06, July 07, August 08, September 09, October 10, November 11, December 12.
4. YYYY is the year with four digits.
5. Join them with dots, day first: DD.MM.YYYY.

An ISO date YYYY-MM-DD starts with the year and ends with the day.
"""

_ROUTE_RULE = """# Ticket routing

Answer with exactly one queue name.

Keywords decide the queue:
- lawyer, legal, VIP, or an amount above $1,000 -> Q-ESCALATE
- log in, password, locked, 2FA, permission -> Q-ACCESS
- invoice, charged, refund, payment, billing -> Q-LEDGER
- laptop, printer, monitor, keyboard, headset -> Q-HARDWARE
- none of these words -> Q-GENERAL

When keywords of two queues appear, the queue higher in this list wins.
"""

REFERENCE_SKILLS = MappingProxyType({
    "house-number": _front("house-number", "Answer short questions about numbers.", _NUMBER_RULE),
    "house-tiny": _front("house-tiny", "Answer short questions about numbers.", _NUMBER_RULE),
    "house-date": _front("house-date", "Rewrite dates for the house records.", _DATE_RULE),
    "house-route": _front("house-route", "Route support tickets to the right queue.", _ROUTE_RULE),
})


# -- suites -----------------------------------------------------------------------------------

def number_suite(train: int = 60, val: int = 30, test: int = 30) -> Suite:
    """Number questions answered in the house number format (digits only)."""
    return Suite(
        name="house-number",
        description="Short number questions; the house wants the bare number (digits only).",
        skill=NUMBER_SKILL, scorer="exact",
        build=_Build("house-number", make_number, NUMBER_KINDS, train, val, test),
    )


def date_suite(train: int = 60, val: int = 30, test: int = 30) -> Suite:
    """Dates in common formats rewritten in the house format."""
    return Suite(
        name="house-date",
        description="Rewrite dates given in common formats in the house date format.",
        skill=DATE_SKILL, scorer="exact",
        build=_Build("house-date", make_date, DATE_KINDS, train, val, test),
    )


def route_suite(train: int = 60, val: int = 30, test: int = 30) -> Suite:
    """Support tickets routed to made-up queues by prioritised house rules."""
    return Suite(
        name="house-route",
        description="Route support tickets to made-up queues by house rules with a priority order.",
        skill=ROUTE_SKILL, scorer="exact",
        build=_Build("house-route", make_ticket, ROUTE_KINDS, train, val, test),
    )


def tiny_suite(train: int = 8, val: int = 6, test: int = 6) -> Suite:
    """A few house-number tasks, for fast integration tests and smoke runs."""
    return Suite(
        name="house-tiny",
        description="A tiny house-number variant (8/6/6 tasks) for smoke tests and CI.",
        skill=NUMBER_SKILL.replace("name: house-number", "name: house-tiny"), scorer="exact",
        build=_Build("house-tiny", make_number, NUMBER_KINDS, train, val, test),
    )


def suites() -> list[Suite]:
    """Every house suite with its default sizes."""
    return [number_suite(), date_suite(), route_suite(), tiny_suite()]
