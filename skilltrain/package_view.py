"""What each reader is shown of a skill package, within a budget, saying what was cut.

The chat target reads what an agent would load: SKILL.md's body, then the files SKILL.md
references (a Markdown link or the path written out), in the order it first names them. Files it
never names are not shown: an agent would not know to open them either. The optimizer reads the
whole file list (so it can name any file in an edit), SKILL.md whole, then the other text files,
referenced ones first, within its own budget.

A file that does not fit is shown in part (its head: reference files lead with what matters,
and a cut at a line break keeps the text readable) when a useful part fits, else named as not
shown; the text itself says so, so neither reader mistakes a cut for the whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_LINK_RE = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MIN_PART = 200  # a file is shown in part only when at least this much of it fits
PACKAGE_HEAD = ("The skill is a package of files. Every edit names the `file` it changes, by "
                "its path below (default SKILL.md); `target` is text of that file.")


def clean_link(target: str) -> str:
    """A link target as a package path: no ./ prefix, no #anchor, no ?query."""
    target = target.split("#", 1)[0].split("?", 1)[0]
    while target.startswith("./"):
        target = target[2:]
    return target


def referenced(main: str, paths: Iterable[str]) -> list[str]:
    """The `paths` SKILL.md (`main`) references, in the order it first references them."""
    known = set(paths)
    first: dict[str, int] = {}
    for m in _LINK_RE.finditer(main):
        path = clean_link(m.group(1))
        if path in known:
            first.setdefault(path, m.start())
    for path in known:
        m = re.search(rf"(?<![\w./-])(?:\./)?{re.escape(path)}(?![\w/-])", main)
        if m is not None:
            first[path] = min(first.get(path, m.start()), m.start())
    return sorted(first, key=lambda p: (first[p], p))


def file_block(path: str, content: str) -> str:
    return f'<skill_file path="{path}">\n{content.rstrip()}\n</skill_file>'


@dataclass(frozen=True)
class View:
    """A rendered view and what it left out: `cut` files shown in part, `omitted` not at all."""

    text: str
    shown: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)

    def describe_cuts(self) -> str:
        """One line for a warning, empty when everything was shown."""
        parts = []
        if self.cut:
            parts.append("shown in part: " + ", ".join(self.cut))
        if self.omitted:
            parts.append("not shown: " + ", ".join(self.omitted))
        return "; ".join(parts)


def _head(content: str, room: int) -> str:
    part = content[:room]
    if "\n" in part:
        part = part.rsplit("\n", 1)[0]
    return part


def within(head: str, files: list[tuple[str, str]], budget: int) -> View:
    """`head` whole, then each file in turn while `budget` characters of file content last."""
    parts = [head.rstrip("\n")] if head.strip() else []
    room = budget
    shown: list[str] = []
    cut: list[str] = []
    omitted: list[str] = []
    for path, content in files:
        if len(content) <= room:
            parts.append(file_block(path, content))
            shown.append(path)
            room -= len(content)
        elif room >= MIN_PART and not cut and not omitted:
            part = _head(content, room)
            rest = len(content) - len(part)
            parts.append(file_block(path, f"{part}\n[... {rest:,} more characters of {path} "
                                          "not shown: over the view budget]"))
            cut.append(path)
            room = 0
        else:
            omitted.append(path)
            room = 0
    if omitted:
        parts.append("(Not shown, over the view budget: " + ", ".join(omitted) + ")")
    return View("\n\n".join(parts) + ("\n" if parts else ""), shown, cut, omitted)


def target_view(body: str, main: str, files: Mapping[str, str], budget: int) -> View:
    """SKILL.md's body, then the files it references. With none referenced this is the body
    alone, exactly what a single-file skill shows."""
    linked = referenced(main, files)
    if not linked:
        return View(body)
    return within(body, [(p, files[p]) for p in linked], budget)


def optimizer_view(main: str, files: Mapping[str, str], binaries: Iterable[str],
                   budget: int) -> View:
    """The file list, SKILL.md whole, then the other text files (referenced first)."""
    linked = referenced(main, files)
    order = [*linked, *sorted(p for p in files if p not in linked)]
    listing = [f"- SKILL.md ({len(main):,} characters)"]
    listing += [f"- {p} ({len(files[p]):,} characters)" for p in order]
    listing += [f"- {p} (binary: carried along, not editable)" for p in sorted(binaries)]
    head = PACKAGE_HEAD + "\n" + "\n".join(listing) + "\n\n" + file_block("SKILL.md", main)
    return within(head, [(p, files[p]) for p in order], budget)
