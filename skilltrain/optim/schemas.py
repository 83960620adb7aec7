"""The JSON shapes the optimizer must answer in. Every string has a maxLength: measured on the
local 1.5B model, an unbounded field invites it to copy long failure text until it runs out of
tokens."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, create_model

from skilltrain.skill import MAIN_FILE, Edit


class EditOut(BaseModel):
    op: Literal["append", "insert_after", "replace", "delete"]
    target: str = Field(default="", max_length=400)
    content: str = Field(default="", max_length=1200)
    rationale: str = Field(default="", max_length=300)
    support: int = Field(default=1, ge=0, le=10000)

    def to_edit(self, source: str) -> Edit:
        return Edit(op=self.op, target=self.target, content=self.content,
                    rationale=self.rationale, support=self.support, source=source,  # type: ignore[arg-type]
                    file=getattr(self, "file", MAIN_FILE))

    @classmethod
    def from_edit(cls, edit: Edit) -> EditOut:
        return cls(op=edit.op, target=edit.target[:400], content=edit.content[:1200],
                   rationale=edit.rationale[:300], support=min(edit.support, 10000))


Reminder = Annotated[str, Field(max_length=200)]


class AppendEditOut(BaseModel):
    """An append-only edit: no anchor, shorter content (measured: the 1.5B model otherwise
    copied the whole skill into `target` and ran out of tokens)."""

    op: Literal["append"]
    content: str = Field(max_length=600)
    rationale: str = Field(default="", max_length=200)
    support: int = Field(default=1, ge=0, le=10000)

    def to_edit(self, source: str) -> Edit:
        return Edit(op="append", content=self.content, rationale=self.rationale,
                    support=self.support, source=source,  # type: ignore[arg-type]
                    file=getattr(self, "file", MAIN_FILE))


class AnalystReply(BaseModel):
    """`patterns` is kept short: measured, the 1.5B model fell into a repetition loop there until
    the bound and had no tokens left for the rule and the edits."""

    patterns: str = Field(max_length=600)
    rule: str = Field(default="", max_length=500)
    edits: list[EditOut] = Field(default_factory=list, max_length=12)


class AnalystReplyWithReminders(AnalystReply):
    """With the skill-aware appendix on: lapses become reminders instead of body edits."""

    reminders: list[Reminder] = Field(default_factory=list, max_length=4)


ALL_OPS = ("append", "insert_after", "replace", "delete")
OP_HELP = {
    "append": "`append`: add `content` at the end of the skill.",
    "insert_after": "`insert_after`: add `content` on a new line after the line containing "
                    "`target`.",
    "replace": "`replace`: replace the exact text `target` with `content`.",
    "delete": "`delete`: remove the exact text `target`.",
}


def ops_help(ops: tuple[str, ...]) -> str:
    return "\n".join(f"   - {OP_HELP[op]}" for op in ops)


def _with_file(model: type[BaseModel]) -> type[BaseModel]:
    """An edit shape that names the package file it changes (skill packages only: a single
    file's schema stays as it was, one field fewer for a small model to get wrong)."""
    return create_model(model.__name__, __base__=model, file=(str, Field(
        default=MAIN_FILE, max_length=200, description="path of the package file to change")))


def analyst_schema(ops: tuple[str, ...], reminders: bool, files: bool = False
                   ) -> type[AnalystReply]:
    """The analyst reply schema with `op` narrowed to the allowed operations, so constrained
    decoding cannot even produce an op the run does not allow (weak optimizers do better with
    `append` alone: they cannot mis-copy an anchor). `files`: edits name their file."""
    base = AnalystReplyWithReminders if reminders else AnalystReply
    if tuple(ops) == ALL_OPS and not files:
        return base
    if tuple(ops) == ("append",):  # no anchor to fill: small models pad `target` with junk
        narrowed: type[BaseModel] = AppendEditOut
    elif tuple(ops) == ALL_OPS:
        narrowed = EditOut
    else:
        narrowed = create_model("EditOut", __base__=EditOut,
                                op=(Literal[tuple(ops)], ...))  # type: ignore[valid-type]
    if files:
        narrowed = _with_file(narrowed)
    return create_model(base.__name__, __base__=base,
                        edits=(list[narrowed], Field(default_factory=list, max_length=12)))


def merge_schema(files: bool) -> type[MergeReply]:
    """The merge reply; for a package its edits keep naming their files."""
    if not files:
        return MergeReply
    return create_model("MergeReply", __base__=MergeReply, edits=(
        list[_with_file(EditOut)], Field(default_factory=list, max_length=24)))


def package_help(new_files: bool) -> str:
    """The line the edit-operation help gains for a package: which file an edit changes."""
    new = (" To add a reference file, `append` to a new path `references/NAME.md` and link it "
           "from SKILL.md." if new_files else " Do not create new files.")
    return (f"   - Every edit has `file`: the path of the package file it changes (default "
            f"{MAIN_FILE}); `target` must be text of that file.{new}")


class RuleReply(BaseModel):
    """A rule analyst's whole answer: one general rule (cheap enough to sample several)."""

    rule: str = Field(max_length=400)


class FullRewriteReply(BaseModel):
    patterns: str = Field(default="", max_length=1000)
    skill: str = Field(max_length=12000)


class RewriteReply(BaseModel):
    skill: str = Field(max_length=12000)


class SlowUpdateReply(BaseModel):
    analysis: str = Field(default="", max_length=1000)
    guidance: str = Field(max_length=2000)


class MetaReply(BaseModel):
    notes: str = Field(max_length=1000)  # prepended to every optimizer call of the next epoch


class CompactReply(BaseModel):
    reminders: list[Reminder] = Field(max_length=20)


class MergeReply(BaseModel):
    reasoning: str = Field(default="", max_length=800)
    edits: list[EditOut] = Field(default_factory=list, max_length=24)


class RankReply(BaseModel):
    reasoning: str = Field(default="", max_length=800)
    chosen: list[int] = Field(max_length=24)
