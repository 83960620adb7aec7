"""Loading the optimizer's Markdown prompt templates (written by us, shipped in the package)."""

from __future__ import annotations

from importlib import resources
from string import Template


def render(name: str, **values: object) -> str:
    """Fill `prompts/<name>.md`; every placeholder must be given (a typo fails loudly)."""
    text = resources.files("skilltrain.optim").joinpath("prompts", f"{name}.md").read_text("utf-8")
    return Template(text).substitute({k: str(v) for k, v in values.items()})
