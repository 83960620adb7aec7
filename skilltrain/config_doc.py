"""The effective config as commented YAML: what `skilltrain config` prints.

A run has ~90 settings and most are defaults nobody wrote down; printing all of them, each under
its `Field(description=...)` as a comment, shows what a run uses and what every key means
without reading config.py. The values are `TrainConfig.redacted()`, so credentials stay
redacted and the text parses back to exactly what config.yaml would hold.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml
from pydantic import BaseModel

from skilltrain.config import TrainConfig

WIDTH = 100  # the project's line length: comments wrap to it


def documented_yaml(config: TrainConfig) -> str:
    """`config` as YAML, defaults included, each key preceded by its description as comments."""
    lines: list[str] = []
    _section(TrainConfig, config.redacted(), "", lines)
    return "\n".join(lines) + "\n"


def _section(model: type[BaseModel], values: dict[str, Any], pad: str, lines: list[str]) -> None:
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            if not pad and lines:
                lines.append("")  # a blank line before each top-level section, for the eye
            _comment(field.description or sub.__doc__ or "", pad, lines)
            lines.append(f"{pad}{name}:")
            _section(sub, values[name], pad + "  ", lines)
            continue
        _comment(field.description or "", pad, lines)
        # Dumped as a one-key mapping so PyYAML quotes, wraps and nests the value; indenting
        # every line alike keeps multi-line scalars and nested mappings valid.
        value = values[name]
        text = yaml.safe_dump({name: value}, sort_keys=False, allow_unicode=True, width=WIDTH,
                              default_flow_style=None if isinstance(value, (dict, list)) else False)
        lines += [f"{pad}{line}" if line.strip() else "" for line in text.splitlines()]


def _comment(text: str, pad: str, lines: list[str]) -> None:
    lines += [f"{pad}# {part}" for part in textwrap.wrap(" ".join(text.split()),
                                                         WIDTH - len(pad) - 2,
                                                         break_on_hyphens=False)]
