"""The skill document: the only thing that learns.

A skill is Markdown with optional Agent Skills front matter and *protected regions* that step
edits must not touch. An edit's anchor is found by a ladder (`skilltrain.anchors`): exact match,
then whitespace- and case-normalised, then one clearly closest line. Measured with the 1.5B
optimizer: it mis-copies anchors, so exact match alone ended most anchored edits
`anchor_missing`. Every rung refuses to choose between two places, so an edit either lands where
the optimizer meant, with a status naming the rung, or it gets a status saying why not. Nothing
is ever applied somewhere else, and nothing inside a protected region.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, model_serializer

from skilltrain import anchors

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_DESCRIPTION = 1024
_FRONT_RE = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_REGION_RE = re.compile(
    r"<!-- skilltrain:begin (?P<name>[a-z0-9-]+) -->.*?<!-- skilltrain:end (?P=name) -->",
    re.DOTALL,
)
_MARKER_RE = re.compile(r"<!-- skilltrain:(?P<kind>begin|end) (?P<name>[a-z0-9-]+) -->")

MARKER = "<!-- skilltrain:"
MAIN_FILE = "SKILL.md"  # the file an edit changes unless it names another (skill packages)
SLOW_UPDATE_REGION = "slow-update"
APPENDIX_REGION = "appendix"


class SkillError(ValueError):
    """A skill document that cannot be used as written. `line` (1-based) is where, when one
    line is at fault, so a message about a file can name `path:line`."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.reason, self.line = message, line


class EditStatus(str, Enum):
    APPLIED = "applied"
    APPLIED_NORMALIZED = "applied_normalized"  # anchor found with whitespace/case normalised
    APPLIED_FUZZY = "applied_fuzzy"  # anchor found as the one clearly closest line
    ANCHOR_MISSING = "anchor_missing"
    AMBIGUOUS_ANCHOR = "ambiguous_anchor"
    PROTECTED_REGION = "protected_region"
    DUPLICATE = "duplicate"  # an append whose every paragraph the skill already has
    # skill packages (skilltrain.package): the file an edit names
    UNKNOWN_FILE = "unknown_file"  # not SKILL.md, and this skill is a single file
    BAD_PATH = "bad_path"  # absolute, `..`, hidden, or not a path a new file may take
    NEW_FILE_OFF = "new_file_off"  # a file the package lacks, and package.new_files is false
    BINARY_FILE = "binary_file"  # binary files are carried along, never edited
    OVER_BUDGET = "over_budget"  # the file or the package would pass its size budget

    @property
    def landed(self) -> bool:
        """Whether the edit took effect, whichever rung of the anchor ladder found it."""
        return self in (EditStatus.APPLIED, EditStatus.APPLIED_NORMALIZED,
                        EditStatus.APPLIED_FUZZY)


EditOp = Literal["append", "insert_after", "replace", "delete"]


class Edit(BaseModel):
    """One proposed change, with the provenance the report and the rejected buffer need."""

    op: EditOp
    target: str = ""
    content: str = ""
    rationale: str = ""
    support: int = Field(default=0, ge=0)
    source: Literal["failure", "success", "slow_update", "rewrite"] = "failure"
    file: str = MAIN_FILE  # a package's file, by its path in the package

    @model_serializer(mode="wrap")
    def _dump(self, handler):  # noqa: ANN001, ANN202 - pydantic's serializer protocol
        """`file` only when not SKILL.md: single-file run folders stay as they were."""
        data = handler(self)
        if isinstance(data, dict) and data.get("file") == MAIN_FILE:
            del data["file"]
        return data

    def describe(self) -> str:
        where = "" if self.file == MAIN_FILE else f"{self.file}: "
        if self.op == "append":
            return f"{where}append: {_short(self.content)}"
        if self.op == "delete":
            return f"{where}delete: {_short(self.target)}"
        return f"{where}{self.op} [{_short(self.target)}] -> {_short(self.content)}"


@dataclass(frozen=True)
class EditResult:
    """One edit's outcome. `matched` is the exact skill text a landed anchored edit acted on
    (its anchor may be spelled differently); empty for appends and for edits that did not land."""

    edit: Edit
    status: EditStatus
    matched: str = ""

    def to_json(self) -> dict:
        """As the step files show it: the edit, its status and what its anchor matched."""
        return {**self.edit.model_dump(), "status": self.status.value, "matched": self.matched}


def _check_markers(text: str) -> None:
    """Every protected-region marker must pair up, in order and unnested: an unpaired marker
    matches no region, so the text a user meant to protect would be open to every edit."""
    open_name, open_line = None, 0
    for at in (m.start() for m in re.finditer(re.escape(MARKER), text)):
        line = text.count("\n", 0, at) + 1
        m = _MARKER_RE.match(text, at)
        if m is None:
            raise SkillError("malformed protected-region marker; expected "
                             "'<!-- skilltrain:begin NAME -->' or '<!-- skilltrain:end NAME -->'"
                             " with NAME of a-z, 0-9 and '-'", line)
        kind, name = m.group("kind"), m.group("name")
        if kind == "begin" and open_name is not None:
            raise SkillError(f"protected region {name!r} begins inside region {open_name!r} "
                             f"(begun on line {open_line}); regions cannot nest", line)
        if kind == "begin":
            open_name, open_line = name, line
        elif open_name is None:
            raise SkillError(f"protected region {name!r} ends here but never begins", line)
        elif name != open_name:
            raise SkillError(f"end of region {name!r} while region {open_name!r} (begun on "
                             f"line {open_line}) is open", line)
        else:
            open_name = None
    if open_name is not None:
        raise SkillError(f"protected region {open_name!r} begins here but never ends", open_line)


def _short(text: str, n: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 3] + "..."


@dataclass(frozen=True)
class Skill:
    """An immutable skill version. Every edit returns a new Skill; the hash names the version.

    A skill package (`skilltrain.package.SkillPackage`) is a Skill whose `text` is its SKILL.md
    with more files beside it; every method that makes a new version goes through `_evolve`, so
    a package's other files ride along whatever the loop does to SKILL.md."""

    text: str

    @classmethod
    def from_file(cls, path: str | Path) -> Skill:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SkillError(f"{p}: cannot read skill file ({exc.strerror})") from exc
        except UnicodeDecodeError:
            raise SkillError(f"{p}: not a text file (expected UTF-8 Markdown)") from None
        if "\x00" in text:
            raise SkillError(f"{p}: a binary file (NUL bytes); expected UTF-8 Markdown")
        skill = cls(text)
        try:
            skill.validate()
        except SkillError as exc:
            where = f"{p}:{exc.line}" if exc.line else str(p)
            raise SkillError(f"{where}: {exc.reason}") from None
        return skill

    def _evolve(self, text: str) -> Skill:
        return dataclasses.replace(self, text=text)

    @property
    def is_package(self) -> bool:
        return False

    def text_files(self) -> dict[str, str]:
        """Every trainable file by its path: a single file is SKILL.md alone."""
        return {MAIN_FILE: self.text}

    def resources(self) -> dict[str, str | bytes]:
        """The files beside SKILL.md that an installed skill carries (none for one file)."""
        return {}

    def for_target(self) -> str:
        """What a chat target reads as its system prompt."""
        return self.body

    def for_optimizer(self) -> str:
        """What an optimizer prompt shows as the skill it edits."""
        return self.text

    # -- identity and size -------------------------------------------------
    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def tokens(self) -> int:
        """Rough token estimate (4 chars/token): we ship no tokenizer on purpose."""
        return (len(self.text) + 3) // 4

    # -- front matter ------------------------------------------------------
    def _front(self) -> tuple[dict, int]:
        m = _FRONT_RE.match(self.text)
        if not m:
            return {}, 0
        try:
            data = yaml.safe_load(m.group(1)) or {}
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            # ValueError too: `name: 2024-13-45` parses as a date that does not exist
            raise SkillError(f"front matter is not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise SkillError("front matter must be a YAML mapping")
        return data, m.end()

    @property
    def front_matter(self) -> dict:
        return self._front()[0]

    @property
    def name(self) -> str | None:
        return self.front_matter.get("name")

    @property
    def description(self) -> str | None:
        return self.front_matter.get("description")

    @property
    def body(self) -> str:
        """What the target reads: the document without its front matter."""
        return self.text[self._front()[1] :].lstrip("\n")

    def validate(self) -> None:
        data, _ = self._front()
        if "name" in data and not (
            isinstance(data["name"], str) and NAME_RE.fullmatch(data["name"])
            and "--" not in data["name"]
        ):
            raise SkillError(
                "front matter 'name': expected 1-64 characters of a-z, 0-9 and single '-' "
                f"(not first or last), got {data['name']!r}"
            )
        desc = data.get("description")
        if desc is not None and (not isinstance(desc, str) or len(desc) > MAX_DESCRIPTION):
            raise SkillError(f"front matter 'description': expected a string of at most "
                             f"{MAX_DESCRIPTION} characters")
        _check_markers(self.text)
        names = [m.group("name") for m in _REGION_RE.finditer(self.text)]
        if len(names) != len(set(names)):
            raise SkillError("a protected region name appears twice")

    # -- protected regions -------------------------------------------------
    def protected_spans(self) -> list[tuple[int, int]]:
        """Character spans no step edit may touch: front matter and every protected region."""
        spans = [(m.start(), m.end()) for m in _REGION_RE.finditer(self.text)]
        end = self._front()[1]
        if end:
            spans.insert(0, (0, end))
        return spans

    def region(self, name: str) -> str | None:
        for m in _REGION_RE.finditer(self.text):
            if m.group("name") == name:
                inner = m.group(0)
                start = inner.index("-->") + 3
                stop = inner.rindex("<!--")
                return inner[start:stop].strip("\n")
        return None

    def with_region(self, name: str, content: str) -> Skill:
        """Replace (or create at the end) a protected region; used by epoch-boundary updates."""
        block = (f"<!-- skilltrain:begin {name} -->\n{content.strip()}\n"
                 f"<!-- skilltrain:end {name} -->")
        for m in _REGION_RE.finditer(self.text):
            if m.group("name") == name:
                return self._evolve(self.text[: m.start()] + block + self.text[m.end() :])
        return self._evolve(self.text.rstrip("\n") + "\n\n" + block + "\n")

    def with_body(self, new_body: str) -> Skill:
        """This skill's front matter and protected regions around a new body (for rewrites:
        whatever a model wrote, it cannot change what step edits may not touch)."""
        body = _REGION_RE.sub("", _FRONT_RE.sub("", new_body.strip() + "\n")).strip()
        body = re.sub(r"<!-- skilltrain:[^>]*-->", "", body).strip()
        end = self._front()[1]
        blocks = [m.group(0) for m in _REGION_RE.finditer(self.text)]
        parts = [self.text[:end].rstrip("\n"), body, *blocks]
        return self._evolve("\n\n".join(p for p in parts if p) + "\n")

    # -- edits -------------------------------------------------------------
    def apply(self, edits: list[Edit]) -> tuple[Skill, list[EditResult]]:
        """Apply edits in order; each gets exactly one status. Deterministic by construction."""
        skill = self
        results: list[EditResult] = []
        for edit in edits:
            skill, status, matched = skill._apply_one(edit)
            results.append(EditResult(edit, status, matched))
        return skill, results

    def _protected_parts(self) -> tuple[str, ...]:
        end = self._front()[1]
        return (self.text[:end], *(m.group(0) for m in _REGION_RE.finditer(self.text)))

    def _apply_one(self, edit: Edit) -> tuple[Skill, EditStatus, str]:
        if edit.file != MAIN_FILE:  # packages route by file (skilltrain.package)
            return self, EditStatus.UNKNOWN_FILE, ""
        if MARKER in edit.content:  # an edit may not forge or break a protected region
            return self, EditStatus.PROTECTED_REGION, ""
        new, status, matched = self._apply_raw(edit)
        if status.landed and new._protected_parts() != self._protected_parts():
            return self, EditStatus.PROTECTED_REGION, ""  # text around a marker formed a new one
        return new, status, matched

    def _new_paragraphs(self, content: str) -> str:
        """The paragraphs of an append that the skill does not already hold (whitespace aside).

        Measured with the 1.5B optimizer: appends often restate the skill's own heading and
        opening lines before the new rule; repeating them only makes every prompt longer.
        """
        have = " ".join(self.text.split())
        paragraphs = re.split(r"\n[ \t]*\n", content.strip("\n"))
        keep = [p for p in paragraphs if p.strip() and " ".join(p.split()) not in have]
        return "\n\n".join(keep)

    def _apply_raw(self, edit: Edit) -> tuple[Skill, EditStatus, str]:
        text = self.text
        if edit.op == "append":
            at = self._append_point()
            block = self._new_paragraphs(edit.content)
            if not block:
                return self, (EditStatus.DUPLICATE if edit.content.strip()
                              else EditStatus.APPLIED), ""
            before = text[:at].rstrip("\n")
            after = text[at:].lstrip("\n")
            joined = (before + "\n\n" if before else "") + block + "\n"
            if after:
                joined += "\n" + after
            return self._evolve(joined), EditStatus.APPLIED, ""
        found = anchors.resolve(text, edit.target, self.protected_spans())
        if isinstance(found, str):
            return self, EditStatus(found), ""
        start, end, rung = found
        status, matched = EditStatus(rung), text[start:end]
        if edit.op == "insert_after":
            line_end = text.find("\n", max(start, end - 1))
            line_end = len(text) if line_end == -1 else line_end
            if self._touches_protected(start, line_end):
                return self, EditStatus.PROTECTED_REGION, ""
            new = text[:line_end] + "\n" + edit.content.strip("\n") + text[line_end:]
            if line_end == len(text):
                new += "\n"
            return self._evolve(new), status, matched
        if edit.op == "replace":
            return self._evolve(text[:start] + edit.content + text[end:]), status, matched
        # delete: also drop the line break when the anchor was a whole line
        if (start == 0 or text[start - 1] == "\n") and text[end : end + 1] == "\n":
            end += 1
        return self._evolve(text[:start] + text[end:]), status, matched

    def _touches_protected(self, start: int, end: int) -> bool:
        return any(start < e and end > s for s, e in self.protected_spans())

    def _append_point(self) -> int:
        """End of the editable text: before any protected regions that close the document."""
        at = len(self.text)
        for s, e in reversed(self.protected_spans()):
            if s == 0:  # front matter
                break
            if self.text[e:at].strip():
                break
            at = s
        return at

    # -- history -----------------------------------------------------------
    def diff(self, other: Skill, *, from_name: str = "before", to_name: str = "after") -> str:
        return "".join(
            difflib.unified_diff(
                self.text.splitlines(keepends=True),
                other.text.splitlines(keepends=True),
                fromfile=from_name,
                tofile=to_name,
            )
        )
