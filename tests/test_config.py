"""TrainConfig: YAML loading, field-level errors, overrides and secret redaction."""

from __future__ import annotations

import pytest
import yaml

from skilltrain.config import (
    ConfigError,
    TrainConfig,
    dump_config,
    load_config,
    merge_overrides,
    parse_config,
)


def write(tmp_path, text: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_yaml(tmp_path):
    path = write(tmp_path, """
data:
  path: tasks.jsonl
  split: [0.6, 0.2, 0.2]
  fields: {input: question, answer: gold}
scorer: numeric
target: {model: "openai:gpt-4o-mini", temperature: 0.3, extra_body: {cache_prompt: false}}
optimizer: {model: "openai:gpt-4.1", max_tokens: 4096}
train: {epochs: 2, lr: 5, lr_min: 1, lr_schedule: linear}
budget: {max_calls: 100}
prices: {"my-model": [1.0, 2.0]}
""")
    cfg = load_config(path)
    assert cfg.data.path == "tasks.jsonl" and cfg.data.split == (0.6, 0.2, 0.2)
    assert cfg.data.fields.input == "question" and cfg.data.fields.id == "id"
    assert cfg.scorer == "numeric"
    assert cfg.target.model == "openai:gpt-4o-mini" and cfg.target.temperature == 0.3
    assert cfg.target.extra_body == {"cache_prompt": False}
    assert cfg.optimizer.max_tokens == 4096
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.lr_min) == (2, 5, 1)
    assert cfg.train.lr_schedule == "linear" and cfg.train.batch_size == 40
    assert cfg.budget.max_calls == 100 and cfg.prices == {"my-model": (1.0, 2.0)}


def test_defaults():
    cfg = TrainConfig()
    assert cfg.target.model == "local:0.5b" and cfg.optimizer.model == "local:1.5b"
    assert cfg.train.lr_schedule == "cosine" and (cfg.train.lr, cfg.train.lr_min) == (4, 2)
    assert cfg.gate.metric == "hard"


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == TrainConfig()


def test_unknown_key_names_the_dotted_key(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 2\n  learning_rate: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "train.learning_rate" in msg and "unknown key" in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="config: targt: unknown key"):
        parse_config({"targt": {"model": "x"}})


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "train:\n  epochs: many\n"))
    msg = str(info.value)
    assert "train.epochs" in msg and "'many'" in msg


def test_out_of_range_value_names_key_and_value():
    with pytest.raises(ConfigError) as info:
        parse_config({"target": {"model": "m", "temperature": 3.5}})
    assert "target.temperature" in str(info.value) and "3.5" in str(info.value)


def test_bad_literal_is_reported():
    with pytest.raises(ConfigError, match=r"train\.lr_schedule.*'exponential'"):
        parse_config({"train": {"lr_schedule": "exponential"}})


def test_lr_min_above_lr():
    with pytest.raises(ConfigError) as info:
        parse_config({"train": {"lr": 2, "lr_min": 3}})
    assert "lr_min (3) must not exceed lr (2)" in str(info.value)
    assert parse_config({"train": {"lr": 3, "lr_min": 3}}).train.lr_min == 3


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"bad\.yaml:2: not valid YAML"):
        load_config(write(tmp_path, "seed: 1\nout: @x\nsuite: s\n", "bad.yaml"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n", "list.yaml"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_data_path_excludes_train_val():
    with pytest.raises(ConfigError, match="either 'path'"):
        parse_config({"data": {"path": "all.jsonl", "train": "t.jsonl", "val": "v.jsonl"}})
    with pytest.raises(ConfigError, match="both 'train' and 'val'"):
        parse_config({"data": {"train": "t.jsonl"}})
    cfg = parse_config({"data": {"train": "t.jsonl", "val": "v.jsonl", "test": "x.jsonl"}})
    assert cfg.data.path is None and cfg.data.test == "x.jsonl"


def test_merge_overrides_dotted_keys():
    base = parse_config({"train": {"epochs": 2}, "target": {"model": "m1"}})
    merged = merge_overrides(base, {"train.epochs": 5, "target.model": "m2", "seed": 9,
                                    "data.path": "new.jsonl", "train.lr": None}, "cli")
    assert merged.train.epochs == 5 and merged.target.model == "m2" and merged.seed == 9
    assert merged.data.path == "new.jsonl"
    assert merged.train.lr == base.train.lr  # None means "not given"
    assert base.train.epochs == 2  # the original is unchanged


def test_merge_overrides_revalidates_with_source():
    base = TrainConfig()
    with pytest.raises(ConfigError, match=r"--flags: train\.epochs"):
        merge_overrides(base, {"train.epochs": 0}, "--flags")
    with pytest.raises(ConfigError, match=r"--flags: train\.nope: unknown key"):
        merge_overrides(base, {"train.nope": 1}, "--flags")


def test_merge_overrides_keeps_inline_secret():
    base = parse_config({"target": {"model": "m", "api_key": "sk-secret-123"}})
    merged = merge_overrides(base, {"train.epochs": 3}, "cli")
    assert merged.target.api_key is not None
    assert merged.target.api_key.get_secret_value() == "sk-secret-123"


def test_inline_api_key_is_redacted_everywhere(tmp_path):
    secret = "sk-live-TOPSECRET-42"
    cfg = load_config(write(tmp_path, f"target:\n  model: m\n  api_key: {secret}\n"
                                      f"optimizer:\n  model: o\n  api_key: {secret}\n"))
    assert cfg.target.api_key.get_secret_value() == secret
    dumped = dump_config(cfg)
    assert secret not in dumped
    assert secret not in repr(cfg) and secret not in str(cfg.redacted())
    back = yaml.safe_load(dumped)
    assert back["target"]["api_key"] == "***redacted***"
    assert back["optimizer"]["api_key"] == "***redacted***"
    assert back["target"]["model"] == "m"


def test_dump_config_round_trips_without_secrets(tmp_path):
    cfg = parse_config({"train": {"epochs": 3}, "target": {"model": "m", "api_key_env": "KEY"}})
    again = parse_config(yaml.safe_load(dump_config(cfg)))
    assert again == cfg
