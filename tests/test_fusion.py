"""Several backbones in one task: config, run directory, reload, predict; and head_lr on fresh parameters."""

from __future__ import annotations

import json

import pytest

import crossfuse
from crossfuse.errors import ConfigError
from crossfuse.plugins import get_plugin_manager

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli
from fusion_task import NAME, plugin, write_patch


@pytest.fixture(autouse=True)
def _fusion_plugin():
    get_plugin_manager().register_plugin(plugin(), "toy")


@pytest.fixture
def fusion_run(tmp_path):
    return crossfuse.run(NAME, output=str(tmp_path / "run"), epochs=2, progress=False,
                         overrides=["train.lr=3e-3", "train.batch_size=16"])


def test_each_input_gets_its_own_backbone_from_the_defaults_or_the_config():
    config = crossfuse.resolve_config(NAME, overrides=["backbones.text.max_length=12"])
    assert {name: section.name for name, section in config.backbones.items()} == {"image": "tiny-cnn",
                                                                                 "text": "tiny-bert"}
    assert config.backbones["text"].max_length == 12


def test_single_backbone_options_are_refused_with_the_key_to_use():
    with pytest.raises(ConfigError, match=r"several backbones \(image, text\).*backbones.image.name"):
        crossfuse.resolve_config(NAME, backbone="resnet18")
    with pytest.raises(ConfigError, match="backbones.audio: task 'toy-fusion' has no input 'audio'"):
        crossfuse.resolve_config(NAME, overrides=["backbones.audio.name=mel-cnn"])
    with pytest.raises(ConfigError, match="one backbone; configure it under backbone"):
        crossfuse.resolve_config("finance-sentiment", overrides=["backbones.text.name=tiny-bert"])


def test_a_backbone_of_the_wrong_modality_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="backbones.image: 'tiny-bert' is a text backbone"):
        crossfuse.run(NAME, output=str(tmp_path / "run"), overrides=["backbones.image.name=tiny-bert"])
    assert not (tmp_path / "run").exists()


def test_fusion_run_keeps_every_backbone_and_predicts_after_reload(fusion_run, tmp_path):
    run_dir = fusion_run.run_dir
    assert (run_dir / "backbones" / "text" / "config.json").is_file()  # tokenizer and architecture, offline
    for name in ("image", "text"):
        keys = json.loads((run_dir / "backbones" / name / "keys.json").read_text())
        assert keys and all(key.startswith(f"{name}.") for key in keys)
    assert fusion_run.report["backbone"] == {"image": "tiny-cnn", "text": "tiny-bert"}
    predictor = crossfuse.load(run_dir)
    assert predictor.task.calibrated_on == 24  # task state came back before the model was built
    inputs = [f"{write_patch(tmp_path / 'red.png', True)}|a warm day", f"{write_patch(tmp_path / 'b.png', False)}|icy"]
    predictions = predictor.predict(inputs)
    assert [p["input"] for p in predictions] == inputs
    assert all(sum(p["probabilities"]) == pytest.approx(1.0, abs=1e-5) for p in predictions)


def test_cli_sets_a_fusion_backbone_with_backbones_keys(tmp_path):
    result = cli("run", NAME, "--epochs", "1", "--output", tmp_path / "run", "--set", "train.progress=false",
                 "--set", "backbones.image.image_size=16")
    assert result.returncode == 0, result.stderr
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "image_size: 16" in saved
    assert_usage_error(cli("run", NAME, "--backbone", "resnet18"), "--set backbones.image.name=")


def test_head_lr_reaches_the_fresh_parameters_the_task_declares():
    from crossfuse.backbones import build_backbone
    from crossfuse.trainer import param_groups

    from fusion_task import FusionTask

    config = crossfuse.resolve_config(NAME, overrides=["train.head_lr=0.5", "train.lr=0.01"])
    task = FusionTask(config)
    task.backbones = {"image": build_backbone("tiny-cnn"), "text": build_backbone("tiny-bert")}
    model = task.build_model(task.backbones)
    fast = {id(p) for group in param_groups(model, config.train, task.fresh_parameters(model)) if group["lr"] == 0.5
            for p in group["params"]}
    assert fast == {id(p) for p in model.head.parameters()}
