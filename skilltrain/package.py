"""Skill packages: a skill folder (SKILL.md plus references/, scripts/, assets/ ...) trained as
one state. Every text file is part of it; binary files ride along unchanged, untrained.

Design: `SkillPackage` is a `Skill` whose `text` is its SKILL.md, with the other files beside it.
The loop reads some fifteen members of Skill in twenty modules (text, body, hash, tokens,
region, with_region, with_body, apply, diff ...), and several of them make new versions (slow
updates, worked examples, the appendix, rewrites). A wrapper holding a Skill would have to
forward every one of them and re-wrap each result, and any it missed would drop the files
without a word. As a subclass each of them works on SKILL.md unchanged, and `Skill._evolve`
carries the other files into every new version; a package overrides only what concerns the whole:
identity (a hash over every path and content), size, `apply` (each edit routed to the file it
names), `diff`, validation, and what the target and the optimizer are shown (package_view.py).
A single Markdown file stays a plain Skill, byte for byte what it was before packages existed.

Edits name their file by its path in the package. Refused, each with its own status: paths that
are absolute, hold `..`, a hidden part or a backslash (`bad_path`); binary files
(`binary_file`); a file the package lacks while `package.new_files` is off (`new_file_off`); a
new file anywhere but `references/NAME.md|.txt` (`bad_path`); an edit that would take a file or
the package past its size budget (`over_budget`). A new reference file that SKILL.md does not
mention after the step's edits gets a link appended to SKILL.md: a file nobody links is one no
agent opens.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from skilltrain.config_sections import PackageConfig
from skilltrain.package_view import View, optimizer_view, referenced, target_view
from skilltrain.skill import (
    MAIN_FILE,
    Edit,
    EditResult,
    EditStatus,
    Skill,
    SkillError,
    _check_markers,
)

NEW_FILE_RE = re.compile(r"references/[A-Za-z0-9][A-Za-z0-9._-]{0,80}\.(?:md|txt)")
SKIPPED_DIRS = ("__pycache__",)  # and every hidden name: .git, .pytest_cache, .DS_Store ...


def clean_path(raw: str) -> str | None:
    """An edit's `file` as a package path, or None when it may not name one (absolute, `..`,
    a hidden part, a backslash, a NUL). Empty means SKILL.md, as a missing field does."""
    path = raw.strip()
    if not path:
        return MAIN_FILE
    if "\\" in path or "\0" in path or path.startswith("/"):
        return None
    while path.startswith("./"):
        path = path[2:]
    parts = path.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return path


@dataclass(frozen=True)
class SkillPackage(Skill):
    """A skill folder as one immutable version; `text` is SKILL.md. See the module docstring."""

    files: tuple[tuple[str, str], ...] = ()  # the other text files, (path, content) by path
    binaries: tuple[tuple[str, bytes], ...] = ()
    limits: PackageConfig = field(default_factory=PackageConfig, compare=False, repr=False)

    @classmethod
    def make(cls, main: str, files: dict[str, str], binaries: dict[str, bytes] | None = None,
             limits: PackageConfig | None = None) -> SkillPackage:
        return cls(main, tuple(sorted(files.items())), tuple(sorted((binaries or {}).items())),
                   limits or PackageConfig())

    # -- what the loop reads ---------------------------------------------------
    @property
    def is_package(self) -> bool:
        return True

    def text_files(self) -> dict[str, str]:
        return {MAIN_FILE: self.text, **dict(self.files)}

    def resources(self) -> dict[str, str | bytes]:
        return {**dict(self.files), **dict(self.binaries)}

    @cached_property
    def hash(self) -> str:  # type: ignore[override]  # computed once: a version never changes
        """Over every path and content (a binary file by its digest): any change to any file
        is a new version."""
        h = hashlib.sha256()
        for path, content in sorted(self.text_files().items()):
            h.update(path.encode() + b"\0" + content.encode("utf-8") + b"\0")
        for path, data in self.binaries:
            h.update(path.encode() + b"\0" + hashlib.sha256(data).digest() + b"\0")
        return h.hexdigest()[:16]

    def file_hashes(self) -> dict[str, str]:
        """Each file's own version: its content hash, by path."""
        out = {p: hashlib.sha256(t.encode("utf-8")).hexdigest()[:12]
               for p, t in self.text_files().items()}
        out.update((p, hashlib.sha256(d).hexdigest()[:12]) for p, d in self.binaries)
        return dict(sorted(out.items()))

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.text_files().values())

    @property
    def tokens(self) -> int:
        """Every text file, at 4 characters a token: what the package weighs, all of it."""
        return (self.chars + 3) // 4

    def target_view(self) -> View:
        return target_view(self.body, self.text, dict(self.files), self.limits.shown_chars)

    def for_target(self) -> str:
        return self.target_view().text

    def for_optimizer(self) -> str:
        return optimizer_view(self.text, dict(self.files), dict(self.binaries),
                              self.limits.optimizer_chars).text

    # -- validation ------------------------------------------------------------
    def validate(self) -> None:
        super().validate()
        for path, content in self.files:
            if path.endswith(".md"):
                try:
                    _check_markers(content)
                except SkillError as exc:
                    where = f"{path}:{exc.line}" if exc.line else path
                    raise SkillError(f"{where}: {exc.reason}") from None
        problem = self.over_budget()
        if problem:
            raise SkillError(problem)

    def over_budget(self, only: str | None = None) -> str | None:
        """Why the package passes a budget (of the file `only`, or any file), or None."""
        lim = self.limits
        for path, content in self.text_files().items():
            if (only is None or path == only) and len(content) > lim.max_file_chars:
                return (f"{path}: {len(content):,} characters, over package.max_file_chars "
                        f"({lim.max_file_chars:,})")
        if self.chars > lim.max_total_chars:
            return (f"the package's text files hold {self.chars:,} characters, over "
                    f"package.max_total_chars ({lim.max_total_chars:,})")
        if len(self.text_files()) + len(self.binaries) > lim.max_files:
            return f"more than package.max_files ({lim.max_files}) files"
        return None

    # -- edits -----------------------------------------------------------------
    def apply(self, edits: list[Edit]) -> tuple[Skill, list[EditResult]]:
        new, results = super().apply(edits)
        if isinstance(new, SkillPackage):  # always: every version of a package is one
            new = new._link_new(set(dict(self.files)))
        return new, results

    def _link_new(self, before: set[str]) -> SkillPackage:
        """A link in SKILL.md to each new file it does not mention yet."""
        pkg: SkillPackage = self
        for path in sorted(set(dict(self.files)) - before):
            if path not in referenced(pkg.text, [path]):
                link = Edit(op="append", content=f"See [{path}]({path}).")
                linked, status, _ = pkg._apply_one(link)
                if status.landed and isinstance(linked, SkillPackage):
                    pkg = linked
        return pkg

    def _apply_one(self, edit: Edit) -> tuple[Skill, EditStatus, str]:
        path = clean_path(edit.file)
        if path is None:
            return self, EditStatus.BAD_PATH, ""
        if path == MAIN_FILE:
            new, status, matched = super()._apply_one(edit.model_copy(update={"file": path}))
            return self._budgeted(new, path, status, matched)
        if path in dict(self.binaries):
            return self, EditStatus.BINARY_FILE, ""
        files = dict(self.files)
        if path not in files:
            if not self.limits.new_files:
                return self, EditStatus.NEW_FILE_OFF, ""
            if not NEW_FILE_RE.fullmatch(path):
                return self, EditStatus.BAD_PATH, ""
        current = files.get(path, "")
        doc, status, matched = Skill(current)._apply_one(
            edit.model_copy(update={"file": MAIN_FILE}))
        if not status.landed or doc.text == current:
            return self, status, matched
        files[path] = doc.text
        new = dataclasses.replace(self, files=tuple(sorted(files.items())))
        return self._budgeted(new, path, status, matched)

    def _budgeted(self, new: Skill, path: str, status: EditStatus, matched: str
                  ) -> tuple[Skill, EditStatus, str]:
        if status.landed and isinstance(new, SkillPackage) and new.over_budget(path):
            return self, EditStatus.OVER_BUDGET, ""
        return new, status, matched

    # -- history ---------------------------------------------------------------
    def diff(self, other: Skill, *, from_name: str = "before", to_name: str = "after") -> str:
        """One unified diff per changed file, each named `NAME/path`."""
        old, new = self.text_files(), other.text_files()
        out = []
        for path in sorted(old.keys() | new.keys()):
            a, b = old.get(path, ""), new.get(path, "")
            if a != b:
                out += difflib.unified_diff(a.splitlines(keepends=True),
                                            b.splitlines(keepends=True),
                                            fromfile=f"{from_name}/{path}",
                                            tofile=f"{to_name}/{path}")
        return "".join(out)


def _is_text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_folder(root: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """The package files under `root` as (text files, binary files), by POSIX path; hidden
    names and __pycache__ are not part of a package. A symbolic link is refused: it may point
    anywhere, and what is shipped must be what was trained."""
    text: dict[str, str] = {}
    binary: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p in SKIPPED_DIRS for p in rel.parts):
            continue
        if path.is_symlink():
            raise SkillError(f"{path}: a symbolic link; a skill package holds plain files only")
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SkillError(f"{path}: cannot read ({exc.strerror})") from None
        decoded = _is_text(data)
        if decoded is None:
            binary[rel.as_posix()] = data
        else:
            text[rel.as_posix()] = decoded
    return text, binary


def read_package(folder: str | Path, limits: PackageConfig | None = None) -> SkillPackage:
    """A package folder as it is, unchecked (a version the run folder holds was checked when
    it was made); `load_package` is the checked way in."""
    root = Path(folder)
    text, binary = read_folder(root)
    if MAIN_FILE not in text:
        raise SkillError(f"{root / MAIN_FILE}: missing or not a text file (expected UTF-8 "
                         "Markdown)")
    main = text.pop(MAIN_FILE)
    return SkillPackage.make(main, text, binary, limits or PackageConfig())


def load_package(folder: str | Path, limits: PackageConfig | None = None) -> SkillPackage:
    """A package folder as a SkillPackage; a SkillError names the file and what is wrong."""
    root = Path(folder)
    limits = limits or PackageConfig()
    if not (root / MAIN_FILE).is_file():
        raise SkillError(f"{root}: a skill package folder needs a {MAIN_FILE}")
    package = read_package(root, limits)
    size = sum(len(d) for _, d in package.binaries)
    if size > limits.max_binary_bytes:
        raise SkillError(f"{root}: binary files of {size:,} bytes, over "
                         f"package.max_binary_bytes ({limits.max_binary_bytes:,})")
    try:
        Skill(package.text).validate()
    except SkillError as exc:
        where = f"{root / MAIN_FILE}:{exc.line}" if exc.line else str(root / MAIN_FILE)
        raise SkillError(f"{where}: {exc.reason}") from None
    try:
        package.validate()
    except SkillError as exc:
        raise SkillError(f"{root}: {exc}") from None
    return package


def load_skill(path: str | Path, limits: PackageConfig | None = None) -> Skill:
    """A starting skill: a Markdown file as a Skill, a folder as a SkillPackage."""
    if Path(path).is_dir():
        return load_package(path, limits)
    return Skill.from_file(path)


def as_skill(value: Skill | str | Path, limits: PackageConfig | None = None) -> Skill:
    """The skill a Python caller passed (`evaluate`, `compare`): a Skill as it is; a Path, or a
    one-line string naming an existing folder (a package) or .md file, loaded like the CLI's
    `eval` loads it; any other string is the skill's text. Telling them apart this way keeps
    `evaluate("Add the numbers.", ...)` working: text with a newline is never a path, and a
    string that names nothing on disk (or cannot be a path at all: too long, a NUL) is text."""
    if isinstance(value, Skill):
        return value
    if isinstance(value, Path):
        return load_skill(value, limits)
    if "\n" not in value and "\r" not in value and value.strip():
        try:
            path = Path(value).expanduser()
            is_skill = path.is_dir() or (path.is_file() and path.suffix.lower() == ".md")
        except (OSError, ValueError):  # a name too long for the system, a NUL byte
            is_skill = False
        if is_skill:
            return load_skill(path, limits)
    return Skill(value)
