"""What tokens cost: the built-in price tables and how a model name finds its rates.

A price entry is USD per million tokens, `(input, output)` or `(input, output, cache_write,
cache_read)`. Prompt-cache tokens are part of the prompt (records.Usage), billed at their own
rates: an entry with four numbers gives them exactly; a two-number entry (most of a user's
`prices:`) takes them from the provider's multipliers of the input price. Anthropic's are 1.25x
for a 5-minute cache write and 0.1x for a cache read ("Prompt caching" on
https://platform.claude.com/docs/en/about-claude/pricing); newer Claude models read the cache
for less than 0.1x, which is why the Claude rows below carry all four numbers. Any other
provider's cache tokens are billed as plain input: a provider we know no discount for is never
undercounted.
"""

from __future__ import annotations

import re

Rates = tuple[float, float, float, float]  # input, output, cache write, cache read ($/MTok)

OPENAI_PRICES: dict[str, tuple[float, ...]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
}

# Claude on the Anthropic API: input, output, 5-minute cache write, cache read, USD per million
# tokens, read on 2026-12-01 from the model pages (https://platform.claude.com/docs/en/models/
# <model>/overview) and the pricing page (https://platform.claude.com/docs/en/about-claude/
# pricing). Sonnet 5.5's cache read is the $0.10 its migration guide gives (half Sonnet 5's).
# Haiku 5.5 is priced in two bands; these are its rates for prompts up to 100,000 tokens (five
# times that above). Long-context surcharges of older models are not modelled.
ANTHROPIC_PRICES: dict[str, tuple[float, ...]] = {
    "claude-fable-5-1": (10.00, 50.00, 12.50, 0.25),
    "claude-opus-5-5": (4.00, 20.00, 5.00, 0.20),
    "claude-sonnet-5-5": (2.00, 10.00, 2.50, 0.10),
    "claude-haiku-5-5": (0.10, 0.50, 0.125, 0.01),
    "claude-opus-5": (5.00, 25.00, 6.25, 0.50),
    "claude-sonnet-5": (2.00, 10.00, 2.50, 0.20),
    "claude-opus-4-8": (5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-7": (5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-6": (5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-5": (5.00, 25.00, 6.25, 0.50),
    "claude-sonnet-4-6": (3.00, 15.00, 3.75, 0.30),
    "claude-sonnet-4-5": (3.00, 15.00, 3.75, 0.30),
    "claude-haiku-4-5": (1.00, 5.00, 1.25, 0.10),
}

DEFAULT_PRICES: dict[str, tuple[float, ...]] = {**OPENAI_PRICES, **ANTHROPIC_PRICES}

ANTHROPIC_CACHE = (1.25, 0.10)  # cache write, cache read, as multiples of the input price
PLAIN_CACHE = (1.0, 1.0)

_DATED = re.compile(r"-\d{8}$")  # a snapshot's date: claude-sonnet-4-5-20250929


def lookup(model: str, table: dict[str, tuple[float, ...]]) -> tuple[float, ...] | None:
    """The entry for `model` as named (openai:gpt-4o), bare (gpt-4o, from openrouter:openai/
    gpt-4o), without a backend's suffix (anthropic:NAME+thinking=N) or a snapshot date."""
    if model in table:
        return table[model]
    bare = model.split(":", 1)[-1].split("/")[-1].split("+", 1)[0]
    for name in (bare, _DATED.sub("", bare)):
        if name in table:
            return table[name]
    return None


def rates(model: str, overrides: dict[str, tuple[float, ...]] | None = None) -> Rates:
    """The four rates of `model`: the config's entry before the built-in one; unknown: free."""
    table = {**DEFAULT_PRICES, **(overrides or {})}
    entry = lookup(model, table) or (0.0, 0.0)
    if len(entry) >= 4:
        return float(entry[0]), float(entry[1]), float(entry[2]), float(entry[3])
    pin, pout = float(entry[0]), float(entry[1])
    write, read = ANTHROPIC_CACHE if _is_claude(model) else PLAIN_CACHE
    return pin, pout, pin * write, pin * read


def _is_claude(model: str) -> bool:
    """Billed by Anthropic: any model behind the anthropic: backend, or a Claude by name."""
    return model.startswith("anthropic:") or model.split(":", 1)[-1].split("/")[-1] \
        .startswith("claude")
