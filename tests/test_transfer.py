"""One skill on several targets (`evaluate_targets`, behind `eval --target A --target B`): a
row per target with its interval; a target that scores nothing is a row, not the end."""

from __future__ import annotations

import pytest

from skilltrain.models.base import ModelError
from skilltrain.models.fake import FakeModel, last_user
from skilltrain.stats import t_interval, wilson
from skilltrain.transfer import evaluate_targets

TASKS = [{"id": f"t{i}", "input": f"item {i}", "answer": "yes",
          "type": "even" if i % 2 == 0 else "odd"} for i in range(20)]


def answering(right: set[int], name: str) -> FakeModel:
    return FakeModel(lambda r: "yes" if int(last_user(r).split()[-1]) in right else "no", name)


def test_one_row_per_target_in_order_with_wilson_intervals():
    strong, weak = answering(set(range(20)), "strong"), answering(set(range(0, 20, 2)), "weak")
    down = FakeModel(lambda r: ModelError("http_error", "gone"), "down")
    rows = evaluate_targets("# Skill\n", TASKS, [strong, weak, down], scorer="exact")
    assert [r.target for r in rows] == ["strong", "weak", "down"]
    assert rows[0].score == 1.0 and rows[0].ci95 == wilson(20, 20) and rows[0].n == 20
    assert rows[0].ci95[0] < 1.0  # 20 of 20 is not certainty
    assert rows[1].score == 0.5 and rows[1].ci95 == wilson(10, 20)
    assert rows[1].by_type == {"even": 1.0, "odd": 0.0}
    assert rows[2].score is None and rows[2].error and "nothing could be scored" in rows[2].error
    assert rows[2].to_json()["ci95"] is None and rows[0].to_json()["usage"]["target"]["calls"]


def test_graded_scores_get_a_t_interval_and_failures_are_counted():
    def respond(request: dict) -> str | Exception:
        i = int(last_user(request).split()[-1])
        return ModelError("http_error", "flaky") if i == 3 else f"0.{i % 10}"

    rows = evaluate_targets("# Skill\n", TASKS, [FakeModel(respond, "graded")],
                            scorer=lambda task, answer: 1.0 if answer == "yes" else
                            float(answer))
    values = [(i % 10) / 10 for i in range(20) if i != 3]
    (row,) = rows
    assert row.n == 19 and row.infra_failures == 1
    assert row.ci95 == pytest.approx(t_interval(values))


def test_a_refused_key_is_not_a_row_but_an_error():
    fatal = FakeModel(lambda r: ModelError("fatal", "invalid api key"), "fatal")
    with pytest.raises(ModelError):
        evaluate_targets("# Skill\n", TASKS, [fatal], scorer="exact")
