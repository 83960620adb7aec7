"""The run's state as plain data: a checkpoint is `to_json`, a resume is `from_json`; step rows
are typed, and rows written by older runs still read."""

from __future__ import annotations

import json

import pytest

from skilltrain.optim.memory import RejectedBuffer, RejectedEntry
from skilltrain.run_state import RunState, Version
from skilltrain.skill import Edit, Skill
from skilltrain.step_record import Outcome, StepRow


def test_state_round_trips_through_json():
    skills = {0: Skill("# A\nstart\n"), 1: Skill("# A\nbetter\n")}
    state = RunState.new(skills[0], RejectedBuffer(capacity=4), ["append", "replace"])
    state.incumbent = state.best = Version(1, skills[1], 3)
    state.versions.append({**state.incumbent.to_json(), "accepted": True, "gated": True})
    state.history = [StepRow(step=1, id="e01-s001", epoch=1, batch=1, lr=2,
                             outcome=Outcome.ACCEPTED, chosen="form", checks={"x": 1}),
                     StepRow(step=2, id="e01-boundary", epoch=1, kind="epoch_boundary",
                             outcome=Outcome.NO_SLOW_UPDATE)]
    state.rejected.add(RejectedEntry(step=2, edits=[Edit(op="append", content="no")],
                                     patterns="p", delta=-0.1))
    state.global_step, state.epoch, state.batch_index = 3, 1, 0
    state.meta_notes, state.edit_ops = "notes", ["append"]
    state.adaptations = [{"step": 1, "change": "edit_ops: append only"}]
    data = json.loads(json.dumps(state.to_json(meter={"m": 1})))
    assert data["meter"] == {"m": 1} and data["history"][0]["outcome"] == "accepted"
    back = RunState.from_json(data, state.initial, skills.__getitem__, 4, ["replace"])
    assert back.incumbent.skill.text == skills[1].text and back.best.number == 1
    assert back.history == state.history
    assert back.count(Outcome.ACCEPTED) == 1
    assert back.count(Outcome.NO_SLOW_UPDATE, "epoch_boundary") == 1
    assert back.epoch_history(0) == [state.history[0]]
    assert (back.global_step, back.epoch, back.meta_notes) == (3, 1, "notes")
    assert back.edit_ops == ["append"] and back.adaptations == state.adaptations
    assert back.rejected.to_json() == state.rejected.to_json()


def test_step_rows_keep_their_json_shape_and_read_older_rows():
    row = StepRow(step=1, id="e01-s001", epoch=1, batch=1, lr=2, outcome=Outcome.SCREENED,
                  reason="no candidate")
    assert row.to_json() == {"step": 1, "id": "e01-s001", "epoch": 1, "batch": 1, "lr": 2,
                             "outcome": "screened", "reason": "no candidate"}
    boundary = StepRow(step=2, id="e01-boundary", epoch=1, kind="epoch_boundary").to_json()
    assert boundary["batch"] is None and boundary["lr"] is None  # always written
    old = StepRow.from_json({"step": None, "id": "x", "epoch": 1, "outcome": "failed (timeout)",
                             "future_key": 7})
    assert old.outcome is Outcome.FAILED and old.reason == "failed (timeout)"
    assert old.to_json()["future_key"] == 7  # a key this version does not know survives
    with pytest.raises(ValueError):
        StepRow.from_json({"step": 1, "id": "x", "epoch": 1, "outcome": "bogus"})
