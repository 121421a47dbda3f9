"""Config: YAML + --set overrides -> typed sections, and errors that name the key, file and line."""

from __future__ import annotations

import pytest

from crossfuse.api import resolve_config
from crossfuse.config import TrainConfig, build, parse_overrides
from crossfuse.errors import ConfigError


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_come_from_the_task_yaml():
    config = resolve_config("finance-sentiment")
    assert config.backbone.name == "all-minilm-l6-v2"
    assert config.data.labels == ["negative", "neutral", "positive"]
    assert config.train.head_lr == pytest.approx(1e-3)


def test_file_then_set_then_options_override_in_that_order(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 2\n  lr: 1e-4\nhead:\n  type: mlp\n")
    config = resolve_config("finance-sentiment", path, ["train.epochs=5", "data.labels=[bad, good]"], seed=7)
    assert (config.train.epochs, config.train.lr, config.head.type) == (5, 1e-4, "mlp")
    assert config.data.labels == ["bad", "good"] and config.seed == 7
    assert resolve_config("finance-sentiment", path, ["train.epochs=5"], epochs=9).train.epochs == 9


def test_unknown_key_in_a_file_names_file_line_and_valid_keys(tmp_path):
    path = write(tmp_path, "seed: 1\ntrain:\n  epochs: 2\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError) as error:
        resolve_config("finance-sentiment", path)
    message = str(error.value)
    assert f"{path}, line 4" in message and "'train.learning_rate'" in message
    assert "Valid keys here:" in message and "lr" in message


def test_unknown_top_level_section_is_named(tmp_path):
    path = write(tmp_path, "optimizer:\n  lr: 1\n")
    with pytest.raises(ConfigError, match=r"line 1: unknown key 'optimizer'.*backbone"):
        resolve_config("finance-sentiment", path)


def test_wrong_type_names_the_key_and_expected_type():
    with pytest.raises(ConfigError, match="--set: train.batch_size must be int, got 'many'"):
        resolve_config("finance-sentiment", overrides=["train.batch_size=many"])


def test_choice_outside_a_literal_lists_the_choices():
    with pytest.raises(ConfigError, match="head.type must be one of 'linear', 'mlp', got 'transformer'"):
        resolve_config("finance-sentiment", overrides=["head.type=transformer"])


def test_a_config_for_another_task_is_refused(tmp_path):
    path = write(tmp_path, "task: driving-detection\n")
    with pytest.raises(ConfigError, match="for task 'driving-detection'"):
        resolve_config("finance-sentiment", path)


def test_invalid_yaml_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config("finance-sentiment", write(tmp_path, "train: [1, 2\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config("finance-sentiment", tmp_path / "missing.yaml")


def test_overrides_parse_yaml_scalars_and_never_evaluate_code():
    parsed = parse_overrides(["a.b=3", "a.c=[x, y]", "d=__import__('os')", "e=true", "f="])
    assert parsed == {"a": {"b": 3, "c": ["x", "y"]}, "d": "__import__('os')", "e": True, "f": None}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["no-equals-sign"])


def test_scientific_notation_strings_become_floats_and_bools_are_not_ints():
    assert build(TrainConfig, {"lr": "1e-4"}).lr == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="epochs must be int"):
        build(TrainConfig, {"epochs": True})
