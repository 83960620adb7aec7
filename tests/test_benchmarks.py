"""The paper benchmarks' adapters over our own fixtures (tests/fixtures/NAME, written by us)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from skilltrain.benchmarks import (
    BenchmarkError,
    builtin_benchmarks,
    get_benchmark,
    livemath,
    searchqa,
)
from skilltrain.benchmarks.paper import PAPER_DEFAULTS
from skilltrain.benchmarks.registry import preset_overrides
from skilltrain.config import TrainConfig, merge_overrides
from skilltrain.records import Rollout
from skilltrain.run_setup import RunParts, resolve_inputs
from skilltrain.scoring import make_scorer

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def rollout(task, answer: str) -> Rollout:
    return Rollout(task_id=task.id, skill_hash="h", answer=answer, trajectory=[])


def score(bench_name: str, task, answer: str):
    return make_scorer(get_benchmark(bench_name).scorer).score(task, rollout(task, answer))


def test_searchqa_loads_manifest_splits_and_cuts_context():
    splits = get_benchmark("searchqa").load(FIXTURES / "searchqa")
    manifest = json.loads((FIXTURES / "searchqa" / "split_manifest.json").read_text())
    assert [t.id for t in splits.train] == manifest["train"]
    assert [t.id for t in splits.val] == manifest["val"]
    assert [t.id for t in splits.test] == manifest["test"]
    long = next(t for t in splits.all() if t.id == "sq-00")
    # the 7,000-character snippet is cut: the context part holds at most 6,000 characters
    context = long.input.split("Search results:\n", 1)[1].rsplit("\n\nGive the answer", 1)[0]
    assert len(context) == searchqa.CONTEXT_CHARS
    assert long.input.startswith("Question: What is 2 plus 5?")


def test_searchqa_scores_tagged_and_last_line_answers():
    task = next(t for t in get_benchmark("searchqa").load(FIXTURES / "searchqa").train
                if t.id == "sq-01")  # 3 plus 7
    assert score("searchqa", task, "I think <answer>10</answer>").hard == 1.0
    assert score("searchqa", task, "reasoning\n10").hard == 1.0  # last line fallback
    wrong = score("searchqa", task, "<answer>The answer is 10</answer>")
    assert wrong.hard == 0.0 and wrong.soft == pytest.approx(0.5)  # P 1/3, R 1: F1 0.5
    assert score("searchqa", task, "<answer>11</answer>").soft == 0.0


def test_livemath_shuffle_is_deterministic_and_label_scored():
    bench = get_benchmark("livemath")
    first = bench.load(FIXTURES / "livemath")
    again = bench.load(FIXTURES / "livemath")
    assert [t.input for t in first.all()] == [t.input for t in again.all()]
    assert {"202511-0", "202511-2"} <= {t.id for t in first.all()}  # the release's layout
    labels = {t.answer for t in first.all()}
    assert len(labels) > 1  # the correct choice is not always in one place
    for task in first.all():
        shown = dict(line.split(") ", 1) for line in task.input.splitlines()
                     if len(line) > 2 and line[1] == ")")
        a, b = (int(x) for x in task.input.split("?")[0].split() if x.isdigit())
        assert shown[task.answer] == str(a + b)  # the label points at the correct text
    task = first.train[0]
    wrong = next(label for label in livemath.LABELS if label != task.answer)
    assert score("livemath", task, f"work\nAnswer: {task.answer}").hard == 1.0
    assert score("livemath", task, f"work\nAnswer: {wrong}").hard == 0.0


def test_livemath_shuffle_depends_on_the_id_only():
    choices = ["a", "b", "c", "d", "e"]
    assert livemath.shuffled("x-1", choices) == livemath.shuffled("x-1", list("vwxyz"))
    orders = {tuple(livemath.shuffled(f"x-{i}", choices)) for i in range(20)}
    assert len(orders) > 5


def test_missing_payload_names_file_source_and_place(tmp_path):
    shutil.copy(FIXTURES / "searchqa" / "split_manifest.json", tmp_path)
    with pytest.raises(BenchmarkError) as err:
        get_benchmark("searchqa").load(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "searchqa.jsonl") in msg and "github.com/nyu-dl" in msg
    assert "\n" not in msg


def test_manifest_item_missing_from_payload_is_named(tmp_path):
    shutil.copytree(FIXTURES / "livemath", tmp_path / "lm")
    (tmp_path / "lm" / "test" / "items.json").write_text('["lm-2030-01-99"]')
    with pytest.raises(BenchmarkError, match="lm-2030-01-99"):
        get_benchmark("livemath").load(tmp_path / "lm")


def test_bad_choice_count_is_one_line(tmp_path):
    shutil.copytree(FIXTURES / "livemath", tmp_path / "lm")
    path = tmp_path / "lm" / "qa" / "2025-01.json"
    rows = json.loads(path.read_text())
    rows[0]["choices"] = rows[0]["choices"][:4]
    path.write_text(json.dumps(rows))
    with pytest.raises(BenchmarkError, match="expected 5 choices, got 4"):
        get_benchmark("livemath").load(tmp_path / "lm")


def test_config_benchmark_feeds_the_suite_path():
    cfg = merge_overrides(TrainConfig(), {"benchmark.name": "searchqa",
                                          "benchmark.data_dir": str(FIXTURES / "searchqa")}, "t")
    splits, skill, scorer = resolve_inputs(cfg, RunParts(), None, None)
    assert len(splits.train) == 8 and "<answer>" in skill.text
    assert type(scorer).__name__ == "Squad"
    short = TrainConfig.model_validate({"benchmark": "livemath"})
    assert short.benchmark.name == "livemath" and short.benchmark.data_dir is None


def test_paper_preset_fills_unset_flags_only():
    merged = preset_overrides("paper", "searchqa", {"train.epochs": 1, "train.lr": None})
    assert merged["train.epochs"] == 1  # the flag wins
    assert merged["train.batch_size"] == 40 and merged["train.minibatch_size"] == 8
    cfg = merge_overrides(TrainConfig(), merged, "t")
    assert (cfg.train.lr, cfg.train.lr_min, cfg.train.lr_schedule) == (4, 2, "cosine")
    assert cfg.gate.metric == "hard" and cfg.train.meta_skill is True
    low = merge_overrides(TrainConfig(), preset_overrides("paper", None, {"train.lr": 1}), "t")
    assert (low.train.lr, low.train.lr_min) == (1, 1)  # a given lr brings its own floor
    assert set(PAPER_DEFAULTS) <= set(get_benchmark("livemath").paper)


def test_every_benchmark_names_its_source_and_payload():
    for bench in builtin_benchmarks().values():
        assert bench.source and bench.payload and bench.skill.startswith("---")
        make_scorer(bench.scorer)  # a scorer name the registry knows


def test_officeqa_attaches_only_the_sources_and_scores_units():
    splits = get_benchmark("officeqa").load(FIXTURES / "officeqa")
    by_id = {t.id: t for t in splits.all()}
    assert sorted(by_id["oq-01"].meta["files"]) == ["documents/report-1.txt",
                                                    "documents/report-2.txt"]
    assert len(by_id["oq-00"].meta["files"]) == 3  # no source_files: the whole folder
    assert "Revenue line 1" in by_id["oq-01"].meta["files"]["documents/report-1.txt"]["text"]
    dollars = by_id["oq-00"]  # answer "$7"
    assert score("officeqa", dollars, "7.00").hard == 1.0  # the unit is ignored
    assert score("officeqa", dollars, "8").hard == 0.0
    assert get_benchmark("officeqa").paper["harness"] == "agent"


def test_officeqa_unknown_source_file_is_named(tmp_path):
    shutil.copytree(FIXTURES / "officeqa", tmp_path / "oq")
    path = tmp_path / "oq" / "officeqa.csv"
    path.write_text(path.read_text().replace("report-2.txt;report-0", "report-9.txt", 1))
    with pytest.raises(BenchmarkError, match="report-9.txt"):
        get_benchmark("officeqa").load(tmp_path / "oq")


def test_officeqa_without_documents_says_where_they_go(tmp_path):
    shutil.copytree(FIXTURES / "officeqa", tmp_path / "oq")
    shutil.rmtree(tmp_path / "oq" / "documents")
    with pytest.raises(BenchmarkError) as err:
        get_benchmark("officeqa").load(tmp_path / "oq")
    assert str(tmp_path / "oq" / "documents") in str(err.value)
    assert "huggingface.co/datasets/databricks/officeqa" in str(err.value)


def test_benchmark_needing_agent_harness_says_so():
    cfg = merge_overrides(TrainConfig(), {"benchmark.name": "officeqa",
                                          "benchmark.data_dir": str(FIXTURES / "officeqa")}, "t")
    with pytest.raises(ValueError, match="needs the agent harness"):
        resolve_inputs(cfg, RunParts(), None, None)


def test_alfworld_reads_games_by_folder_or_file_and_family(monkeypatch):
    splits = get_benchmark("alfworld").load(FIXTURES / "alfworld")
    manifest = json.loads((FIXTURES / "alfworld" / "split_manifest.json").read_text())
    assert [t.id for t in splits.train] == [e.removesuffix("/game.tw-pddl")
                                            for e in manifest["train"]]
    assert {t.type for t in splits.all()} == {"pick_and_place_simple", "look_at_obj_in_light",
                                              "pick_clean_then_place_in_recep"}
    assert all(Path(t.meta["game_file"]).is_file() for t in splits.all())
    assert splits.train[0].input.startswith("Your task: bring the counter up")
    monkeypatch.setenv("ALFWORLD_DATA", str(FIXTURES / "alfworld"))
    cfg = merge_overrides(TrainConfig(), {"benchmark.name": "alfworld",
                                          "harness": "environment"}, "t")
    found, _, scorer = resolve_inputs(cfg, RunParts(), None, None)  # from $ALFWORLD_DATA
    assert len(found.val) == 4 and type(scorer).__name__ == "Reward"


def test_alfworld_environment_defaults_to_the_adapters(monkeypatch):
    from skilltrain.benchmarks.alfworld import AlfworldEnv
    from skilltrain.run_setup import build_harness

    cfg = merge_overrides(TrainConfig(), {"benchmark.name": "alfworld",
                                          "harness": "environment"}, "t")
    assert build_harness(cfg).factory is AlfworldEnv
    own = merge_overrides(cfg, {"environment.env": "agents.fake_alfworld:FakeAlfworld"}, "t")
    assert build_harness(own).factory.__name__ == "FakeAlfworld"  # the user's wins


def test_alfworld_without_games_or_folder_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "split_manifest.json").write_text('{"train": ["a"], "val": ["b"]}')
    with pytest.raises(BenchmarkError, match="no game.tw-pddl files under"):
        get_benchmark("alfworld").load(tmp_path)
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(BenchmarkError, match=r"--data-dir .* or \$ALFWORLD_DATA"):
        get_benchmark("alfworld").data_dir(None)


def test_fake_alfworld_is_won_only_by_the_solution():
    from agents.fake_alfworld import FakeAlfworld

    task = next(t for t in get_benchmark("alfworld").load(FIXTURES / "alfworld").all()
                if t.id.endswith("T0001"))  # solution: inc, inc
    env = FakeAlfworld()
    assert "Your task is to: Your task: bring" in env.reset(task)
    assert env.step("dec") == ("Nothing happens.", 0.0, False)
    assert env.step("inc")[1:] == (0.0, False)
    assert env.step("inc") == ("You won!", 1.0, True)


def test_livemath_without_qa_files_names_the_release_layout(tmp_path):
    shutil.copytree(FIXTURES / "livemath" / "train", tmp_path / "train")
    with pytest.raises(BenchmarkError) as err:
        get_benchmark("livemath").load(tmp_path)
    assert "data/YYYYMM/qa_YYYYMM_final.json" in str(err.value)
    assert "huggingface.co/datasets/LiveMathematicianBench" in str(err.value)


def test_docvqa_loads_answered_items_with_their_page_and_scores_anls():
    splits = get_benchmark("docvqa").load(FIXTURES / "docvqa")
    assert len(splits.train) == 8 and len(splits.test) == 4
    assert "2000" not in {t.id for t in splits.all()}  # unanswered items are skipped
    task = splits.train[0]  # "What is 3 plus 11?", answers 14 or "14 total"
    assert Path(task.meta["images"][0]).name == "page00.png"
    assert score("docvqa", task, "14").hard == 1.0
    near = score("docvqa", task, "14 totl")  # one edit from "14 total": ANLS 1 - 1/8
    assert near.hard == 0.0 and near.soft == pytest.approx(0.875)
    assert score("docvqa", task, "The answer is 14.").soft == 0.0  # distance past 0.5


def test_chat_sends_images_as_parts_and_anthropic_converts_them():
    from skilltrain.harness.chat import user_content
    from skilltrain.models.anthropic_wire import _messages

    task = get_benchmark("docvqa").load(FIXTURES / "docvqa").train[0]
    parts = user_content(task)
    assert parts[0] == {"type": "text", "text": task.input}
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    turns = _messages([{"role": "user", "content": parts}])
    blocks = turns[0]["content"]
    assert blocks[0] == {"type": "text", "text": task.input}
    assert blocks[1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": url.split(",", 1)[1]}}
    plain = get_benchmark("searchqa").load(FIXTURES / "searchqa").train[0]
    assert user_content(plain) == plain.input  # no images: the text as before
