"""Meaning checks on optimizer replies: each check and each fallback."""

from __future__ import annotations

import asyncio
import json

from skilltrain.data import Task
from skilltrain.models.client import RoleClient
from skilltrain.models.fake import FakeModel
from skilltrain.models.meter import Meter
from skilltrain.optim.aggregate import aggregate
from skilltrain.optim.checks import CheckLog, EditChecker, Grounding, prompt_text, words
from skilltrain.optim.memory import RejectedBuffer
from skilltrain.optim.patch import Patch
from skilltrain.optim.reflect import reflect
from skilltrain.optim.select import select_edits
from skilltrain.records import Rollout, Score
from skilltrain.skill import Edit, Skill

SKILL = Skill("# Dates\n\nRewrite the date the user gives in the house format.\n")


def checker(log: CheckLog | None = None) -> EditChecker:
    return EditChecker(SKILL, log or CheckLog())


def test_empty_repeated_and_anchorless_edits_are_dropped_and_counted():
    log = CheckLog()
    kept = checker(log).edits([
        Edit(op="append", content="   "),
        Edit(op="replace", target="", content="Use dots."),
        Edit(op="replace", target="house format", content="House  Format"),
        Edit(op="append", content="rewrite the date the user gives in the HOUSE format."),
        Edit(op="append", content="Write the day first, then the month, then the year."),
    ], max_support=5)
    assert [e.content for e in kept] == ["Write the day first, then the month, then the year."]
    assert log.counts == {"empty_content": 1, "empty_target": 1, "no_change": 1,
                          "repeats_skill": 1}
    assert {d["reason"] for d in log.dropped} == set(log.counts)


def test_an_edit_copying_our_own_prompt_is_dropped():
    sentence = "A target must be copied exactly from the current skill."
    assert " ".join(words(sentence)) in " ".join(words(prompt_text()))
    log = CheckLog()
    kept = checker(log).edits([
        Edit(op="append", content=f"Be careful. {sentence}"),
        Edit(op="append", content="Reply with JSON only."),
        Edit(op="append", content="Write the year with four digits."),
    ], max_support=3)
    assert [e.content for e in kept] == ["Write the year with four digits."]
    assert log.counts["copied_prompt"] == 2


def test_support_cannot_exceed_the_rollouts_behind_it():
    log = CheckLog()
    kept = checker(log).edits([Edit(op="append", content="Use dots.", support=2000)],
                              max_support=8)
    assert kept[0].support == 8 and log.counts["support_clamped"] == 1


def test_a_merged_edit_must_trace_to_its_inputs():
    inputs = [Edit(op="append", content="Write the day with two digits.", support=3),
              Edit(op="append", content="Separate the parts with dots.", support=2)]
    log = CheckLog()
    kept = checker(log).merged([
        Edit(op="append", content="Write the day with two digits and separate parts with dots.",
             support=50),
        Edit(op="append", content="Always answer in French.", support=1),
    ], inputs)
    assert kept is not None and len(kept) == 1
    assert kept[0].support == 5  # at most the support of the edits it came from
    assert log.counts["untraceable_merge"] == 1
    assert checker(log).merged([Edit(op="append", content="Something else entirely.")],
                               inputs) is None
    assert log.counts["merge_fallback"] == 1


def _model(replies: dict[str, object]) -> tuple[FakeModel, RoleClient]:
    def respond(request):
        name = (request.get("response_format") or {}).get("json_schema", {}).get("name")
        reply = replies[name]
        return reply if isinstance(reply, str) else json.dumps(reply)

    model = FakeModel(respond)
    return model, RoleClient(model, "optimizer", Meter())


def test_a_blank_merge_reply_falls_back_to_the_analysts_edits():
    """The case seen with the 1.5B model: a merge reply that turned the one good edit into an
    edit with empty target and content and support 2000."""
    _, client = _model({"MergeReply": {"reasoning": "merged", "edits": [
        {"op": "insert_after", "target": "", "content": "", "support": 2000}]}})
    good = Edit(op="insert_after", target="# Dates", content="Use DD.MM.YYYY.", support=2)
    other = Edit(op="append", content="Write the year with four digits.", support=1)
    log = CheckLog()
    agg = asyncio.run(aggregate(SKILL, [Patch("failure", [good]), Patch("failure", [other])],
                                client, checker=EditChecker(SKILL, log)))
    merged = agg.patch
    assert [e.content for e in merged.edits] == [good.content, other.content]
    assert agg.fallbacks == 1 and log.counts["merge_fallback"] == 1
    assert log.counts["empty_content"] == 1


def test_no_merge_or_ranking_call_when_there_is_nothing_to_merge_or_rank():
    model, client = _model({})
    edit = Edit(op="append", content="Use dots.", support=1)
    merged = asyncio.run(aggregate(SKILL, [Patch("failure", [edit])], client)).patch
    selection = asyncio.run(select_edits(SKILL, merged, 2, client))
    assert selection.edits == [edit] and model.requests == []


def test_a_ranking_reply_naming_no_existing_edit_falls_back_to_merge_order():
    _, client = _model({"RankReply": {"reasoning": "r", "chosen": [7, 0, -1]}})
    edits = [Edit(op="append", content=f"Rule {i}.", support=i) for i in range(3)]
    sel = asyncio.run(select_edits(SKILL, Patch("merged", edits), 1, client))
    assert sel.fallback and sel.edits == [edits[2]]  # most support first


TRAIN = [Task(id="t1", input="Rewrite this date: 20 May 1997", answer="20.05.1997"),
         Task(id="t2", input="Rewrite this date: 3 June 2013", answer="03.06.2013"),
         Task(id="t3", input="Rewrite this date: 11 March 1980", answer="11.03.1980")]


def ground(content: str) -> tuple[str | None, CheckLog]:
    log = CheckLog()
    kept = Grounding(TRAIN, log).edits([Edit(op="append", content=content)])
    return (kept[0].content if kept else None), log


def test_a_worked_example_with_the_wrong_answer_is_repaired_from_the_reference():
    text, log = ground("Examples:\n20 May 1997 -> 01.06.2013\n3 June 2013 -> 03.06.2013")
    assert text == "Examples:\n20 May 1997 -> 20.05.1997\n3 June 2013 -> 03.06.2013"
    assert log.counts["example_repaired"] == 1


def test_an_input_answer_pair_on_two_lines_is_repaired():
    text, log = ground("Input: Rewrite this date: 11 March 1980\nAnswer: 1980-03-11")
    assert text == "Input: Rewrite this date: 11 March 1980\nAnswer: 11.03.1980"
    assert log.counts["example_repaired"] == 1


def test_a_quoted_input_without_its_answer_is_dropped_and_rules_are_untouched():
    text, log = ground("Put the day first.\nFor 20 May 1997 think about the month.")
    assert text == "Put the day first." and log.counts["example_line_dropped"] == 1
    text, log = ground("Put the day first. Separate with dots.")
    assert text == "Put the day first. Separate with dots." and not log.counts
    text, log = ground("20 May 1997 is tricky")
    assert text is None and log.counts["wrong_example"] == 1


def _failures(n: int) -> list[tuple[Task, Rollout]]:
    out = []
    for i in range(n):
        task = Task(id=f"f{i}", input=f"Rewrite this date: {i + 1} May 1990", answer="x")
        out.append((task, Rollout(task_id=task.id, skill_hash=SKILL.hash, answer="May",
                                  score=Score(hard=0, soft=0))))
    return out


def test_an_analyst_whose_edits_are_unusable_still_contributes_its_stated_rule():
    model, client = _model({"AnalystReply": {
        "patterns": "month names instead of numbers",
        "rule": "Write the month as a two-digit number.",
        "edits": [{"op": "replace", "target": "", "content": "x", "support": 99}]}})
    result = asyncio.run(reflect(SKILL, _failures(3), client, minibatch_size=8, budget=2,
                                 rejected=RejectedBuffer(), analyse_successes=False))
    (patch,) = result.patches
    assert [e.content for e in patch.edits] == ["Write the month as a two-digit number."]
    assert patch.edits[0].support == 3 and patch.rule.startswith("Write the month")
    assert result.checks.counts["rule_appended"] == 1
    assert result.checks.counts["empty_target"] == 1
    prompt = model.requests[0]["messages"][-1]["content"]
    assert "| # | type | input | answer given | correct answer |" in prompt


def test_extra_proposals_are_sampled_at_the_proposal_temperature():
    from skilltrain.optim.reflect import ProposalSettings

    model, client = _model({"AnalystReply": {"patterns": "p", "rule": "", "edits": []},
                            "RuleReply": {"rule": "Write the month as a number."}})
    result = asyncio.run(reflect(SKILL, _failures(3), client, minibatch_size=8, budget=2,
                                 rejected=RejectedBuffer(), analyse_successes=False,
                                 search=ProposalSettings(proposals=3, temperature=0.9)))
    rules = [r for r in model.requests
             if r["response_format"]["json_schema"]["name"] == "RuleReply"]
    assert sorted(r["temperature"] for r in rules) == [0.0, 0.9, 0.9]
    assert sorted(r["seed"] for r in rules) == [0, 1, 2]  # one prompt, three samples
    assert len({json.dumps(r["messages"]) for r in rules}) == 1
    assert [p.side for p in result.patches].count("rule") == 3
    assert all(p.edits[0].content == "Write the month as a number." for p in result.patches
               if p.side == "rule")


def test_a_reply_stuck_in_a_loop_is_recognised():
    from skilltrain.optim.checks import repetitive

    loop = " ".join(f"The '{k}' task was also difficult, as the model had trouble." for k in
                    ("add", "units", "words", "money", "units"))
    assert repetitive(loop)
    assert not repetitive("Answers were sentences. Numbers were written as words. The day came "
                          "before the month. Some answers had units.")
