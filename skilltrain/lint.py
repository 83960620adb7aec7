"""Checking a skill file or a skill package against the Agent Skills specification.

The rules come from the specification at https://agentskills.io/specification (its source:
github.com/agentskills/agentskills, docs/specification.mdx; field set and messages cross-checked
with that repository's reference validator, skills-ref): front matter is YAML between `---`
lines; `name` is required, 1-64 characters of a-z, 0-9 and `-`, not first or last, no `--`, and
equal to the package folder's name; `description` is required, non-empty, at most 1024
characters; `compatibility` at most 500; `metadata` maps strings to strings; `allowed-tools` is
a space-separated string or a list of strings; `license` is a string. The spec recommends a
SKILL.md under 500 lines and an instruction body under 5000 tokens, and file references relative
to the skill root. skills-ref rejects any other field; clients add their own (Claude Code reads
several), so an unknown field is a warning here.

Our own rules on top: relative links must reach a file inside the package (a link out of it
points at something the shipped package will not have), size budgets per file and in total,
and balanced protected-region markers (the same check the trainer makes when it loads a skill).

Severity, and why it differs between a single file and a package: a bare Markdown file trains
fine and always has, so in a single file only what is wrong as written is an error (a malformed
name, an overlong description, broken markers) and what is absent (front matter, name,
description) is a warning; a single file is trained alone, so a broken link in it is a warning
too. A package is what gets shipped to an Agent Skills client, so its SKILL.md must be complete:
missing front matter, name or description, a name that is not the folder's, and a link that is
missing or leaves the package are errors. The trainer refuses a starting skill with errors only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import yaml

from skilltrain.skill import MARKER, SkillError, _check_markers

SKILL_FILE = "SKILL.md"
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500
BODY_LINES = 500  # the spec's recommendation for SKILL.md
BODY_TOKENS = 5000  # the spec's recommendation for the instructions
DEFAULT_MAX_FILE_TOKENS = 8000  # one file loaded whole into a prompt
DEFAULT_MAX_TOKENS = 32000  # a whole package
KNOWN_FIELDS = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")

Severity = Literal["error", "warning"]
_NAME_RE = re.compile(r"[a-z0-9-]+")
_FRONT_OPEN = re.compile(r"\A---[ \t]*\n")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)  # as skill.py reads it
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[^)]*)?\)")
_REF_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CODE_SPAN = re.compile(r"(`+).*?\1")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BEGIN = re.compile(r"<!-- skilltrain:begin ([a-z0-9-]+) -->")


@dataclass(frozen=True)
class Finding:
    """One problem: where (file and 1-based line), which rule, how bad, and what to do."""

    file: str
    line: int
    rule: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}: {self.rule}: {tag}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "rule": self.rule,
                "severity": self.severity, "message": self.message}


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def tokens(text: str) -> int:
    """The same rough estimate as Skill.tokens (4 characters a token): no tokenizer shipped."""
    return (len(text) + 3) // 4


class _Report:
    """Findings for one file, so each rule is one short call."""

    def __init__(self, file: str, package: str | None = None) -> None:
        """`package`: the package folder's name when the file is a package's SKILL.md."""
        self.file, self.package = file, package
        self.found: list[Finding] = []

    def error(self, line: int, rule: str, message: str) -> None:
        self.found.append(Finding(self.file, line, rule, "error", message))

    def warn(self, line: int, rule: str, message: str) -> None:
        self.found.append(Finding(self.file, line, rule, "warning", message))

    def absent(self, line: int, rule: str, message: str) -> None:
        """Something the spec requires is not there: an error in a package, else a warning."""
        (self.error if self.package is not None else self.warn)(line, rule, message)


def lint_path(path: str | Path, *, max_file_tokens: int | None = DEFAULT_MAX_FILE_TOKENS,
              max_tokens: int | None = DEFAULT_MAX_TOKENS) -> list[Finding]:
    """Every finding for a skill file or package folder (a budget of None is not checked).
    Raises FileNotFoundError when `path` is neither."""
    p = Path(path)
    if p.is_dir():
        return _lint_package(p, max_file_tokens, max_tokens)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such skill file or package folder")
    text = _read(p, str(p))
    if isinstance(text, Finding):
        return [text]
    return lint_text(text, str(p), folder=p.parent, max_file_tokens=max_file_tokens)


def lint_text(text: str, file: str, *, folder: Path | None = None,
              max_file_tokens: int | None = DEFAULT_MAX_FILE_TOKENS) -> list[Finding]:
    """Findings for one skill document on its own (not a package's SKILL.md). `folder` is
    where its relative links are looked up (None: not checked, e.g. a built-in suite's skill,
    which has no folder)."""
    report = _Report(file)
    _check_skill_md(text, report, max_file_tokens)
    if folder is not None:
        _check_links(text, folder, None, report)
    return sorted(report.found, key=lambda f: f.line)


def _check_skill_md(text: str, report: _Report, max_file_tokens: int | None) -> None:
    front, body_line = _front_matter(text, report)
    if front is not None:
        _check_fields(*front, report)
    _check_body(text, body_line, report, max_file_tokens)


# -- front matter --------------------------------------------------------------------------

def _front_matter(text: str, report: _Report) -> tuple[tuple[dict, dict] | None, int]:
    """The front matter's fields and the line of each, and the body's first line; None when
    there is none or it is broken (reported). Read exactly as the trainer reads it."""
    m = _FRONT.match(text)
    if m is None:
        opened = _FRONT_OPEN.match(text) is not None
        report.absent(1, "front-matter", "front matter opened here is never closed with '---'"
                      if opened else "no front matter; an Agent Skill starts with '---', then "
                      "name: and description:, then '---'")
        return None, 1
    body_line = text.count("\n", 0, m.end()) + 1
    try:
        data = yaml.safe_load(m.group(1))
        node = yaml.compose(m.group(1), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:  # e.g. 2024-13-45
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc) or exc.__class__.__name__
        report.error(2 + mark.line if mark is not None else 1, "front-matter",
                     f"not valid YAML ({problem})")
        return None, body_line
    if data is None:
        data = {}
    if not isinstance(data, dict):
        report.error(2, "front-matter", "front matter must be a YAML mapping of fields")
        return None, body_line
    lines = {str(key.value): 2 + key.start_mark.line for key, _ in getattr(node, "value", ())
             if isinstance(key, yaml.ScalarNode)}
    return ({str(k): v for k, v in data.items()}, lines), body_line


def _check_fields(fields: dict[str, Any], lines: dict[str, int], report: _Report) -> None:
    def at(name: str) -> int:
        return lines.get(name, 1)

    for name in fields:
        if name not in KNOWN_FIELDS:
            report.warn(at(name), "unknown-field", f"{name!r} is not an Agent Skills field "
                        f"({', '.join(KNOWN_FIELDS)}); strict validators reject it")
    if "name" not in fields:
        report.absent(1, "name-missing", "front matter has no 'name'")
    else:
        _check_name(fields["name"], at("name"), report)
    value = fields.get("description")
    if "description" not in fields:
        report.absent(1, "description-missing", "front matter has no 'description'")
    elif not isinstance(value, str) or not value.strip():
        report.error(at("description"), "description-format", "'description' must be a "
                     "non-empty string saying what the skill does and when to use it")
    elif len(value) > MAX_DESCRIPTION:
        report.error(at("description"), "description-format", f"'description' is {len(value)}"
                     f" characters; at most {MAX_DESCRIPTION}")
    value = fields.get("compatibility", "-")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_COMPATIBILITY:
        report.error(at("compatibility"), "compatibility-format", "'compatibility' must be a "
                     f"string of 1-{MAX_COMPATIBILITY} characters")
    if not isinstance(fields.get("license", ""), str):
        report.error(at("license"), "license-format", "'license' must be a string (a license "
                     "name or a bundled license file)")
    value = fields.get("metadata", {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        report.error(at("metadata"), "metadata-format", "'metadata' must map strings to "
                     "strings (quote numbers: version: \"1.0\")")
    value = fields.get("allowed-tools", "")
    if not (isinstance(value, str) or isinstance(value, list)
            and all(isinstance(v, str) for v in value)):
        report.error(at("allowed-tools"), "allowed-tools-format", "'allowed-tools' must be a "
                     "space-separated string or a list of strings")


def _check_name(value: Any, line: int, report: _Report) -> None:
    if not isinstance(value, str) or not value:
        report.error(line, "name-format", f"'name' must be a string, got {value!r}")
        return
    problems = []
    if len(value) > MAX_NAME:
        problems.append(f"{len(value)} characters, at most {MAX_NAME}")
    if not _NAME_RE.fullmatch(value):
        problems.append("only lowercase a-z, 0-9 and '-' are allowed")
    if value.startswith("-") or value.endswith("-"):
        problems.append("must not start or end with '-'")
    if "--" in value:
        problems.append("must not contain '--'")
    if problems:
        report.error(line, "name-format", f"'name' {value!r}: {'; '.join(problems)}")
    elif report.package is not None and report.package != value:
        report.error(line, "name-folder", f"'name' {value!r} must equal the package folder's "
                     f"name {report.package!r}")


# -- body: size, markers -------------------------------------------------------------------

def _check_body(text: str, body_line: int, report: _Report, max_file_tokens: int | None,
                skill_file: bool = True) -> None:
    if skill_file:
        body = "\n".join(text.split("\n")[body_line - 1:])
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if lines > BODY_LINES:
            report.warn(body_line, "body-lines", f"{lines} lines; the spec recommends under "
                        f"{BODY_LINES}: move detail into references/")
        if tokens(body) > BODY_TOKENS:
            report.warn(body_line, "body-tokens", f"instructions are about {tokens(body)} "
                        f"tokens; the spec recommends under {BODY_TOKENS}")
    if max_file_tokens is not None and tokens(text) > max_file_tokens:
        report.error(1, "file-tokens", f"about {tokens(text)} tokens; the budget is "
                     f"{max_file_tokens} per file (--max-file-tokens)")
    if MARKER in text:
        try:
            _check_markers(text)
        except SkillError as exc:
            report.error(exc.line or 1, "markers", exc.reason)
            return
        seen: dict[str, int] = {}
        for m in _BEGIN.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            if m.group(1) in seen:
                report.error(line, "markers", f"protected region {m.group(1)!r} already began "
                             f"on line {seen[m.group(1)]}; region names must be unique")
            seen.setdefault(m.group(1), line)


# -- links -----------------------------------------------------------------------------------

def links(text: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every Markdown link and image outside code, inline or reference-style,
    that points at a file rather than a URL or an anchor in the same page."""
    fence = ""
    for number, line in enumerate(text.split("\n"), 1):
        m = _FENCE.match(line)
        if m and (not fence or m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)):
            fence = "" if fence else m.group(1)
            continue
        if fence:
            continue
        line = _CODE_SPAN.sub("", line)
        found = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        ref = _REF_LINK.match(line)
        if ref:
            found.append(ref.group(1))
        for target in found:
            target = unquote(target.strip("<>").split("#", 1)[0].split("?", 1)[0])
            if target and not _SCHEME.match(target):
                yield number, target


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_links(text: str, folder: Path, root: Path | None, report: _Report) -> None:
    """Links are read relative to the linking file's folder (as Markdown renders them) and, in
    a package, also relative to its root (as the spec writes file references). `root` None: a
    single file, which has no package to stay inside."""
    for line, target in links(text):
        bases = [folder] if root is None or folder == root else [folder, root]
        places = [(base / target).resolve() for base in bases]
        if root is None:
            if not any(p.exists() for p in places):
                report.warn(line, "link-missing", f"link to {target!r}: no such file")
            continue
        within = [p for p in places if _inside(p, root)]
        if not within:
            report.error(line, "link-escapes", f"link to {target!r} leaves the package; "
                         "the shipped package will not hold it")
        elif not any(p.exists() for p in within):
            report.error(line, "link-missing", f"link to {target!r}: no such file in the "
                         "package")


# -- packages ----------------------------------------------------------------------------------

def _read(path: Path, shown: str) -> str | Finding:
    """A text file's content, or the finding that says why it cannot be one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Finding(shown, 1, "unreadable", "error", f"cannot read ({exc.strerror})")
    except UnicodeDecodeError:
        return Finding(shown, 1, "unreadable", "error", "not a text file (expected UTF-8 "
                       "Markdown)")
    if "\x00" in text:
        return Finding(shown, 1, "unreadable", "error", "a binary file (NUL bytes); expected "
                       "UTF-8 Markdown")
    return text


def package_files(root: Path) -> Iterator[Path]:
    """Every file of a package and every link to a folder, in a stable order, leaving out
    hidden entries and caches; a linked folder is not entered."""
    for here, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        linked = [d for d in dirs if (Path(here) / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in linked]
        for name in sorted([*files, *linked]):
            if not name.startswith("."):
                yield Path(here) / name


def _lint_package(given: Path, max_file_tokens: int | None,
                  max_tokens: int | None) -> list[Finding]:
    """Findings for every file of a package; paths are shown under the folder as given."""
    root = given.resolve()
    skill_md = root / SKILL_FILE
    if not skill_md.is_file():
        return [Finding(str(given), 1, "skill-md-missing", "error", f"a skill package needs a "
                        f"{SKILL_FILE} at its top")]
    found: list[Finding] = []
    total = 0
    for path in package_files(root):
        shown = str(given / path.relative_to(root))
        report = _Report(shown, root.name if path == skill_md else None)
        if not _inside(path.resolve(), root):
            report.error(1, "file-escapes", "a symbolic link out of the package; the shipped "
                         "package will not hold what it points at")
            found += report.found
            continue
        if path.is_dir():  # a link to a folder inside the package: its files are seen there
            continue
        markdown = path.suffix.lower() in (".md", ".markdown")
        text = _read(path, shown)
        if isinstance(text, Finding):
            if markdown:
                found.append(text)
            continue  # a binary asset is not text the target reads
        total += tokens(text)
        if path == skill_md:
            _check_skill_md(text, report, max_file_tokens)
        else:
            _check_body(text, 1, report, max_file_tokens, skill_file=False)
        if markdown:
            _check_links(text, path.parent, root, report)
        found += sorted(report.found, key=lambda f: f.line)
    if max_tokens is not None and total > max_tokens:
        found.append(Finding(str(given / SKILL_FILE), 1, "total-tokens", "error", f"the "
                             f"package's text is about {total} tokens; the budget is "
                             f"{max_tokens} (--max-tokens)"))
    return found
