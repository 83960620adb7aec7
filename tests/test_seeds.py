"""`train_seeds`: the same config once per seed into OUT/seed-K/, seeds.json with the per-seed
rows and the mean gain's interval, and an interrupted seeds run that continues seed by seed."""

from __future__ import annotations

import json

import pytest
import yaml
from scripted import Script, make_tasks

from skilltrain import Skill, Trainer
from skilltrain.config import ConfigError, parse_config
from skilltrain.models.fake import FakeModel
from skilltrain.report.seeds import write_seeds_report
from skilltrain.seeds import SEEDS_FILE, resume_plan, train_seeds

START = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"


def config(out) -> dict:
    return {"out": str(out), "scorer": "exact", "gate": {"rule": "strict"},
            "train": {"epochs": 1, "batch_size": 6, "minibatch_size": 8, "lr": 2, "lr_min": 1,
                      "proposals": 0, "screen": False, "demonstrations": False,
                      "answer_form": False}}


def test_each_seed_trains_into_its_folder_and_the_summary_has_the_interval(tmp_path):
    model = FakeModel(Script(analyst_plan=["auto"]).respond)  # stateless: same for each seed
    seen = []
    data = train_seeds(config(tmp_path / "out"), 3, make_tasks(24), Skill(START), target=model,
                       optimizer=model, on_seed=lambda *args: seen.append(args))
    root = tmp_path / "out"
    assert [(k, s, skipped) for k, s, _, skipped in seen] == [(0, 0, False), (1, 1, False),
                                                             (2, 2, False)]
    for seed in (0, 1, 2):
        saved = yaml.safe_load((root / f"seed-{seed}" / "config.yaml").read_text())
        assert saved["seed"] == seed and saved["out"] == str(root / f"seed-{seed}")
        summary = json.loads((root / f"seed-{seed}" / "summary.json").read_text())
        row = data["rows"][seed]
        assert row["test_gain"] == pytest.approx(summary["test"]["best"]
                                                 - summary["test"]["initial"])
        assert row["accepted"] == summary["steps"]["accepted"] and row["status"] == "done"
    gains = [r["test_gain"] for r in data["rows"]]
    assert data["test_gain"]["mean"] == pytest.approx(sum(gains) / 3) and gains[0] > 0
    assert data["test_gain"]["n"] == 3 and data["test_gain"]["ci95"] is not None
    assert json.loads((root / SEEDS_FILE).read_text())["rows"] == data["rows"]
    assert data["status"] == "done" and data["root"] == str(root)
    page = write_seeds_report(root).read_text()
    assert 'href="seed-1/report.html"' in page and (root / "seed-2" / "report.html").is_file()
    assert "Mean test gain" in page


def test_an_interrupted_seeds_run_continues_seed_by_seed(tmp_path):
    script = Script(analyst_plan=["auto"])
    model = FakeModel(script.respond)
    root = tmp_path / "out"

    def stop_in_seed_1(cfg):
        def kill(event):
            if event["event"] == "step_start" and event["step"] == 2:
                raise KeyboardInterrupt  # a Ctrl-C after seed 1's first checkpointed step
        callbacks = [kill] if cfg.seed == 1 else []
        return Trainer(cfg, target=model, optimizer=model, callbacks=callbacks).fit(
            make_tasks(24), Skill(START))

    with pytest.raises(KeyboardInterrupt):
        train_seeds(config(root), 2, run_one=stop_in_seed_1)
    plan = json.loads((root / SEEDS_FILE).read_text())
    assert [r["status"] for r in plan["rows"]] == ["done", "started"]
    assert plan["status"] == "incomplete"
    before = len(script.requests)
    seen = []
    cfg, n = resume_plan(root)  # what `skilltrain resume OUT` reads
    assert n == 2 and cfg.seed == 0
    data = train_seeds(cfg, n, make_tasks(24), Skill(START), target=model, optimizer=model,
                       on_seed=lambda *args: seen.append(args))
    assert [skipped for *_, skipped in seen] == [True, False]
    events = [json.loads(line)["event"]
              for line in (root / "seed-1" / "events.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and "resume" in events and events[-1] == "end"
    assert [r["status"] for r in data["rows"]] == ["done", "done"]
    assert len(script.requests) > before  # seed 1 did train on; seed 0 was read, not rerun


def test_bad_plans_fail_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="at least 2"):
        train_seeds(config(tmp_path / "out"), 1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(ConfigError, match="a single run's folder"):
        train_seeds(config(run), 2)
    with pytest.raises(ConfigError, match="no tasks"):  # bad input inside the first seed
        train_seeds(parse_config(config(tmp_path / "fresh")), 2)
    assert not (tmp_path / "fresh").exists()
