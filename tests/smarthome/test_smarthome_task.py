"""The task's wiring without training: registration, splits by speaker, state, config checks, the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch

import crossfuse
from crossfuse.api import list_datasets, resolve_config, task_class
from crossfuse.backbones import build_backbone
from crossfuse.errors import ConfigError, DataError, DataWarning
from crossfuse_smarthome.config import V2_12_WORDS
from crossfuse_smarthome.demo import DEMO_COMMANDS
from crossfuse_smarthome.model import KeywordSpotter, mean_normalize

from voice_files import speakers_folder, tone_commands

TASK = "smarthome-voice-commands"
SPEAKERS = [f"p{i:02d}" for i in range(20)]


def make_task(*overrides, data=None):
    config = resolve_config(TASK, overrides=list(overrides), data=data)
    return task_class(TASK)(config)


def test_the_plugin_registers_its_task_format_backbones_and_metric_without_torch():
    code = ("import sys; from crossfuse.plugins import get_plugin_manager; m = get_plugin_manager(); "
            f"assert {TASK!r} in m.tasks and 'speech-commands' in m.datasets and 'accuracy-per-voice' in m.metrics; "
            "assert m.backbones.get('bc-resnet-3').meta['feature_dim'] == 96; "
            "assert 'torch' not in sys.modules, 'registering imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


@pytest.mark.parametrize("name, dim", [("bc-resnet-1", 32), ("bc-resnet-1.5", 48), ("bc-resnet-8", 256)])
def test_each_registered_size_builds_with_its_feature_dim(name, dim):
    backbone = crossfuse.get_backbone(name, pretrained=False)
    info = {row["name"]: row for row in crossfuse.list_backbones("audio")}[name]
    assert backbone.feature_dim == info["feature_dim"] == dim and backbone.modality == "audio"


def test_speech_commands_is_the_format_auto_finds(tmp_path):
    from crossfuse.datasets import resolve_format

    root = speakers_folder(tmp_path / "sc", ["yes"], ["a"])
    assert resolve_format(TASK, root).name == "speech-commands"
    assert any(row["name"] == "speech-commands" and row["tasks"] == [TASK] for row in list_datasets())


def test_unset_words_are_the_demo_commands_on_the_demo_and_v2_12_on_a_folder(tmp_path):
    assert make_task().words == DEMO_COMMANDS
    assert make_task(data=str(tmp_path)).words == V2_12_WORDS
    assert make_task("data.words=[yes, no, on, off]").labels == ["_silence_", "_unknown_", "yes", "no", "on", "off"]


def test_a_folder_without_lists_is_split_by_speaker(tmp_path):
    root = speakers_folder(tmp_path / "flat", ["yes", "no", "bed"], SPEAKERS)
    task = make_task("data.words=[yes, no]", "data.validation_fraction=0.3", "data.test_fraction=0.2",
                     data=str(root))
    data = task.load_data()
    voices = {name: {c.speaker for c in split if c.speaker}
              for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test))}
    assert all(voices.values())
    assert not voices["train"] & voices["validation"] and not voices["train"] & voices["test"]
    assert not voices["validation"] & voices["test"]
    assert data.info["voices"] == {name: len(v) for name, v in voices.items()}


def test_too_few_speakers_to_carve_a_split_is_a_data_error(tmp_path):
    root = speakers_folder(tmp_path / "one", ["yes", "no"], ["solo"], noise=False)
    with pytest.raises(DataError, match="1 speakers leave no validation split"):
        make_task("data.words=[yes, no]", data=str(root)).load_data()


def test_missing_noise_and_actions_are_warned_about(tmp_path):
    root = speakers_folder(tmp_path / "quiet", ["yes", "no", "bed"], SPEAKERS[:10], noise=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_task("data.words=[yes, no]", "data.actions={yes: {action: confirm}}", data=str(root)).load_data()
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any("no _silence_ clips (no _background_noise_ folder" in m for m in messages)
    assert any("no background recordings" in m for m in messages)
    assert any("data.actions gives no action for no" in m for m in messages)


def test_a_separate_noise_folder_feeds_mixing(tmp_path):
    words = ["lights", "music", "bed"]
    root = tone_commands(tmp_path / "sc", words, 4, validation=[3], noise_seconds=0)
    noise = tone_commands(tmp_path / "elsewhere", [], 0, noise_seconds=2.0)
    task = make_task("data.words=[lights, music]", f"data.noise={noise}", data=str(root))
    data = task.load_data()
    assert [p.rsplit("/", 1)[-1] for p in task.noise_paths] == ["hiss.wav"]
    assert {c.path for c in data.train if c.label == "_silence_"} == set(task.noise_paths)  # silence is cut from it
    with pytest.raises(DataError, match="data.noise: .*nowhere is not a folder"):
        make_task("data.words=[lights, music]", f"data.noise={tmp_path / 'nowhere'}", data=str(root)).load_data()


@pytest.mark.parametrize("override, message", [
    ("data.augment.snr_db=[20, 5]", "data.augment.snr_db must be \\[low, high\\]"),
    ("data.stream.threshold=0", "data.stream.threshold must be in \\(0, 1\\]"),
    ("data.stream.hop_s=0", "data.stream.hop_s must be positive"),
    ("data.augment.noise_probability=2", "noise_probability must be in \\[0, 1\\]"),
    ("data.words=[yes, _silence_]", "cannot be a command word"),
])
def test_unusable_settings_are_config_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        make_task(override)


def test_data_sample_rate_must_match_the_backbone():
    task = make_task("data.sample_rate=8000")
    with pytest.raises(ConfigError, match="data.sample_rate is 8000 Hz but backbone 'bc-resnet-3' takes 16000 Hz"):
        task.build_model(build_backbone("bc-resnet-1"))
    task = make_task("data.sample_rate=8000", "backbone.sample_rate=8000")
    task.build_model(build_backbone(task.config.backbone))
    assert task.sample_rate == 8000


def test_state_round_trips_through_json():
    task = make_task("data.words=[lights, music]", "data.stream.hop_s=0.05")
    task.calibration = {"threshold": 0.8, "per_hour": 0.0}
    state = json.loads(json.dumps(task.state_dict()))
    served = make_task()
    served.load_state_dict(state)
    assert served.words == ["lights", "music"] and served.labels == task.labels
    assert served.stream == task.stream and served.stream.hop_s == 0.05 and served.calibration == task.calibration
    assert served.actions["lights"] == {"device": "lights", "action": "toggle"}


class WaveformBackbone(torch.nn.Module):
    """A stand-in audio backbone whose features are the waveforms themselves."""

    features_kind, feature_dim, sample_rate = "waveform", 4, 16000

    def frontend(self, waveforms, lengths=None):
        return waveforms, lengths

    def encode(self, features, lengths=None):
        return features[:, :4]


def test_spec_augment_masks_only_spectrograms_and_only_in_training():
    augment = SimpleNamespace(spec_augment=True, freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_width=30)
    from crossfuse_smarthome.audio import SpecAugment

    torch.manual_seed(0)
    model = KeywordSpotter(build_backbone("bc-resnet-1"), 5, SpecAugment(augment), dropout=0.0).eval()
    clips = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert torch.equal(model(clips), model(clips))  # eval: no masks
        model.train()
        assert not torch.allclose(model(clips), model(clips))
    assert KeywordSpotter(WaveformBackbone(), 3, SpecAugment(augment)).spec_augment is None


def test_mean_normalisation_centres_each_band_over_the_valid_frames_only():
    features = torch.randn(2, 40, 50) + 5
    features[1, :, 30:] = 0  # padding of a shorter clip
    normalised = mean_normalize(features, torch.tensor([50, 30]))
    assert normalised[0].mean(dim=-1).abs().max() < 1e-5
    assert normalised[1, :, :30].mean(dim=-1).abs().max() < 1e-5 and float(normalised[1, :, 30:].abs().sum()) == 0


def test_a_wav2vec2_backbone_trains_without_spec_augment(tmp_path):
    from crossfuse.testing import write_tiny_audio_backbone

    task = make_task()
    model = task.build_model(build_backbone(str(write_tiny_audio_backbone(tmp_path / "w2v"))))
    assert model.spec_augment is None and task.sample_rate == 16000
    batch = task.collate([(torch.randn(16000) * 0.1, 3), (torch.randn(12000) * 0.1, 5)])
    loss = task.training_step(model.train(), batch)
    loss.backward()
    assert torch.isfinite(loss) and model.head.linear.weight.grad is not None
