"""What `crossfuse run`, `eval` and `predict` promise whatever the task: nothing written before every
check passes, Ctrl-C resumable with exit 130, registered metrics on demand, transfer between runs,
and old plugins told what to change."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import crossfuse
from crossfuse.errors import ConfigError, CrossfuseError
from crossfuse.plugins import get_plugin_manager

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli
from fusion_task import NAME, plugin

TINY = ["--backbone", "tiny-bert", "--set", "train.progress=false", "--set", "train.batch_size=64"]


@pytest.fixture(autouse=True)
def _fusion_plugin():
    get_plugin_manager().register_plugin(plugin(), "toy")


def test_epochs_zero_and_a_missing_device_fail_before_anything_is_written(tmp_path):
    assert_usage_error(cli("run", "finance-sentiment", "--epochs", "0", "--output", tmp_path / "a", *TINY),
                       "train.epochs must be at least 1, got 0")
    if not torch.cuda.is_available():
        assert_usage_error(cli("run", "finance-sentiment", "--device", "cuda", "--output", tmp_path / "b", *TINY),
                           "no CUDA device")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_layer_decay_outside_zero_to_one_is_refused_by_key(tmp_path):
    assert_usage_error(cli("run", "finance-sentiment", "--set", "train.layer_decay=1.5", "--output", tmp_path, *TINY),
                       "train.layer_decay must be in (0, 1] (e.g. 0.8), got 1.5")


def test_resume_and_overwrite_together_are_refused(tmp_path):
    assert_usage_error(cli("run", "finance-sentiment", "--resume", "--overwrite", "--output", tmp_path / "c", *TINY),
                       "--resume continues the run in --output and --overwrite replaces it: choose one")
    assert not (tmp_path / "c").exists()


def test_ctrl_c_saves_a_checkpoint_exits_130_and_names_the_resume_command(tmp_path, monkeypatch):
    from crossfuse.trainer import Trainer

    original = Trainer._optimizer_step

    def interrupted_after_two(self):
        original(self)
        if self.state.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_optimizer_step", interrupted_after_two)
    result = cli("run", "finance-sentiment", "--output", tmp_path / "run", *TINY)
    assert result.returncode == 130, result.stderr
    assert f"crossfuse run finance-sentiment --output {tmp_path / 'run'} --resume" in result.stderr
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
    resumed = cli("run", "finance-sentiment", "--output", tmp_path / "run", "--resume")
    assert resumed.returncode == 0 and "resumed at step 2" in resumed.stderr


def test_registered_metrics_are_added_by_config_on_every_split(tmp_path):
    result = crossfuse.run(NAME, output=str(tmp_path / "run"), epochs=1, progress=False,
                           overrides=["eval.metrics=[ece, brier, balanced-accuracy]"])
    for split in ("validation", "test"):
        metrics = result.report["splits"][split]
        assert 0.0 <= metrics["ece"] <= 1.0 and 0.0 <= metrics["brier"] <= 2.0
        assert 0.0 <= metrics["balanced-accuracy"] <= 1.0
    with pytest.raises(ConfigError, match="eval.metrics: unknown metric 'eec'. Did you mean 'ece'"):
        crossfuse.resolve_config(NAME, overrides=["eval.metrics=[eec]"])


def test_a_metric_needing_outputs_the_task_lacks_says_which(tmp_path):
    from crossfuse.metrics import registered_metric

    task = crossfuse.api.task_class(NAME)(crossfuse.resolve_config(NAME))
    with pytest.raises(CrossfuseError, match=r"metric 'brier' .* needs the output\(s\) 'probabilities'.*gives 'logits'"):
        registered_metric("brier", {"logits": torch.zeros(2, 2), "labels": torch.zeros(2)}, [], task)


def test_init_from_starts_a_backbone_from_another_tasks_run(tmp_path):
    source = crossfuse.run("finance-sentiment", backbone="tiny-bert", output=str(tmp_path / "finance"),
                           progress=False, overrides=["train.max_steps=3", "train.epochs=1"])
    config = crossfuse.resolve_config(NAME, overrides=[f"backbones.text.init_from={source.run_dir}"])
    from crossfuse.run_backbones import build_backbones

    backbones, origins = build_backbones(crossfuse.api.task_class(NAME), config)
    trained = load_file(str(source.run_dir / "checkpoints" / "best.safetensors"))
    for key, value in backbones["text"].state_dict().items():
        assert torch.equal(value, trained[f"backbone.{key}"]), key
    assert origins["text"]["task"] == "finance-sentiment" and origins["text"]["backbone"] == "tiny-bert"
    result = crossfuse.run(NAME, output=str(tmp_path / "fusion"), epochs=1, progress=False,
                           overrides=[f"backbones.text.init_from={source.run_dir}"])
    assert result.report["init_from"]["text"]["run"] == str(source.run_dir)


def test_init_from_a_different_architecture_is_refused(tmp_path):
    source = crossfuse.run(NAME, output=str(tmp_path / "fusion"), epochs=1, progress=False,
                           overrides=["train.max_steps=2"])
    with pytest.raises(CrossfuseError, match="does not have this run's architecture"):
        crossfuse.run("finance-sentiment", backbone="all-minilm-l6-v2", init_from=str(source.run_dir),
                      output=str(tmp_path / "finance"))
    assert not (tmp_path / "finance").exists()


def test_task_state_is_saved_with_the_run(tmp_path):
    result = crossfuse.run(NAME, output=str(tmp_path / "run"), epochs=1, progress=False)
    assert json.loads((result.run_dir / "task_state.json").read_text()) == {"calibrated_on": 24}


class OldStyleTask:
    """Written before the contract had preprocess(sample, train): its own helper has that name."""

    @staticmethod
    def make():
        from fusion_task import FusionTask

        class Old(FusionTask):
            name = "old-style"

            def preprocess(self, path, augment=False):  # noqa: D401 - the pre-v2 helper
                return path

        return Old


def test_a_task_whose_method_clashes_with_the_contract_is_told_what_to_change():
    from crossfuse import hookimpl

    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register("old-style", OldStyleTask.make(), modality="image+text")

    get_plugin_manager().register_plugin(Plugin(), "old")
    assert_usage_error(cli("run", "old-style"), "lacks the contract's `train` argument", "rename the task's own helper")


def test_the_report_records_what_backbone_weights_loaded(tmp_path):
    from safetensors.torch import save_file

    from crossfuse.backbones import build_backbone

    bert = build_backbone("tiny-bert").model  # a plain transformers BertModel: no crossfuse prefix
    save_file({k: v.contiguous() for k, v in bert.state_dict().items()}, str(tmp_path / "bert.safetensors"))
    result = crossfuse.run("finance-sentiment", backbone="tiny-bert", output=str(tmp_path / "run"), progress=False,
                           overrides=[f"backbone.weights={tmp_path / 'bert.safetensors'}", "train.max_steps=2"])
    line = result.report["backbone_weights"]["backbone"]
    total = len(bert.state_dict())
    assert f"loaded {total} of {total} tensors" in line and "(file prefix '' -> 'model.')" in line
