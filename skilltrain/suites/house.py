"""House-convention suites: tasks whose right answer follows a rule only the skill can teach.

A model cannot guess a house number format, a house date format or made-up support queues, so
these suites measure what a skill adds rather than what the model already knows. Every task is
generated from a seed, so a suite needs no data files and every split is reproducible.

Each split is drawn from its own random stream (test first, then validation, then train) and
deduplicated by input against the splits drawn before it. Test therefore stays the same when the
train size changes, and no input ever appears in two splits.

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


def _same(text: str) -> str:
    return text


def draw_splits(name: str, make: Maker, kinds: tuple[str, ...], seed: int,
                train: int, val: int, test: int, key: Callable[[str], str] = _same) -> Splits:
    """Draw the three splits of a generated suite.

    Kinds are assigned round-robin and then shuffled, so every split holds every kind in near
    equal numbers and a per-type breakdown compares like with like. `key` says when two inputs
    count as the same item (a ticket that differs from another only by its sender is a copy).
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
    key: Callable[[str], str] = _same

    def __call__(self, seed: int) -> Splits:
        return draw_splits(self.name, self.make, self.kinds, seed,
                           self.train, self.val, self.test, self.key)


# -- house-number: answer with the bare number ------------------------------------------------

NUMBER_KINDS = ("add", "subtract", "multiply", "divide", "thousands")


def make_number(rng: random.Random, kind: str) -> tuple[str, str]:
    """A small word problem whose answer is a non-negative integer."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    form = rng.randrange(3)
    if kind == "add":
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        text = (
            f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
            f"A class has {a} girls and {b} boys. How many students are in the class?",
            f"There are {a} cars in a parking lot and {b} more arrive. How many cars are there?",
        )[form]
        return text, str(a + b)
    if kind == "subtract":
        a = rng.randint(20, 99)
        b = rng.randint(1, a - 1)
        text = (
            f"{name} had {a} {item} and gave away {b}. How many {item} are left?",
            f"A tank holds {a} liters of water. {b} liters leak out. How many liters remain?",
            f"A book has {a} pages. {name} has read {b} of them. How many pages are left?",
        )[form]
        return text, str(a - b)
    if kind == "multiply":
        a, b = rng.randint(2, 12), rng.randint(2, 9)
        text = (
            f"One ticket costs ${a}. How much do {b} tickets cost?",
            f"A box holds {a} {item}. How many {item} are in {b} boxes?",
            f"{name} walks {a} km every day. How many km does {name} walk in {b} days?",
        )[form]
        return text, str(a * b)
    if kind == "divide":
        b, each = rng.randint(2, 9), rng.randint(2, 12)
        total = b * each
        text = (
            f"{total} {item} are shared equally among {b} friends. How many does each get?",
            f"A rope {total} meters long is cut into {b} equal pieces. How long is each piece?",
            f"{name} pays ${total} for {b} equal lunches. What does one lunch cost?",
        )[form]
        return text, str(each)
    if kind == "thousands":
        if form == 0:
            a, b = rng.randint(10, 40) * 100, rng.randint(10, 40) * 100
            return (f"A shop sold {a:,} cups in May and {b:,} in June. "
                    "How many cups did it sell in total?", str(a + b))
        if form == 1:
            a, b = rng.randint(20, 90) * 100, rng.randint(1, 9) * 100
            return f"A car costs ${a:,}. A discount of ${b} is taken off. What is the price now?", \
                str(a - b)
        a, b = rng.randint(11, 40), rng.choice((100, 200, 250, 300, 400, 500))
        return f"A stadium has {a} sections with {b} seats each. How many seats are there?", \
            str(a * b)
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


def ticket_body(ticket: str) -> str:
    """The ticket without its sender, the key for deduplication."""
    return ticket.split(": ", 1)[-1]


def _lower_first(text: str) -> str:
    return text if text.startswith(("I ", "2FA")) else text[:1].lower() + text[1:]


# -- skills -----------------------------------------------------------------------------------

NUMBER_SKILL = _front("house-number", "Answer short arithmetic word problems.",
                      "# Word problems\n\nAnswer the question.")
DATE_SKILL = _front("house-date", "Rewrite dates for the house records.",
                    "# Dates\n\nRewrite the date the user gives in the house format.")
ROUTE_SKILL = _front(
    "house-route", "Route support tickets to the right queue.",
    "# Ticket routing\n\nRead the support ticket and say which queue should handle it. "
    "The queues are Q-ACCESS, Q-ESCALATE, Q-GENERAL, Q-HARDWARE and Q-LEDGER.",
)

_NUMBER_RULE = """# Word problems

Solve the problem, then reply with the number only.

- Digits only: no units, no currency signs, no words, no sentence.
- No thousands separators: write 3600, never 3,600.
- No trailing period and nothing before or after the number.

Examples: "How much do 3 tickets at $4 cost?" -> 12. "1,200 cups plus 2,400 cups?" -> 3600.
"""

_DATE_RULE = """# Dates

Rewrite the date the user gives in the house format DD.MM.YYYY and reply with nothing else.

- DD: the day with two digits (5 -> 05). MM: the month number with two digits (March -> 03).
- YYYY: the four-digit year. Separate the parts with dots. Drop any weekday.
- An ISO date 2024-03-05 is year-month-day, so it becomes 05.03.2024.

Examples: "March 5, 2024" -> 05.03.2024. "the 21st of November, 1999" -> 21.11.1999.
"""

_ROUTE_RULE = """# Ticket routing

Reply with only the queue name. Check the rules in this order; the first one that matches wins:

1. Q-ESCALATE: the ticket mentions a lawyer, legal steps, a VIP, or any amount over $1,000.
2. Q-ACCESS: logging in, passwords, locked accounts, 2FA codes or permissions.
3. Q-LEDGER: invoices, charges, refunds, payments or billing.
4. Q-HARDWARE: a laptop, printer, monitor, keyboard or headset.
5. Q-GENERAL: anything else.

Example: "My laptop will not turn on. Also, I was charged twice." -> Q-LEDGER (rule 3 comes first).
"""

REFERENCE_SKILLS = MappingProxyType({
    "house-number": _front("house-number", "Answer short arithmetic word problems.", _NUMBER_RULE),
    "house-tiny": _front("house-tiny", "Answer short arithmetic word problems.", _NUMBER_RULE),
    "house-date": _front("house-date", "Rewrite dates for the house records.", _DATE_RULE),
    "house-route": _front("house-route", "Route support tickets to the right queue.", _ROUTE_RULE),
})


# -- suites -----------------------------------------------------------------------------------

def number_suite(train: int = 60, val: int = 30, test: int = 30) -> Suite:
    """Word problems answered in the house number format (digits only)."""
    return Suite(
        name="house-number",
        description="Arithmetic word problems; the house wants the bare number (digits only).",
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
        build=_Build("house-route", make_ticket, ROUTE_KINDS, train, val, test,
                     key=ticket_body),
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
