"""Audio backbones: featurize / frontend / encode, and padding that never changes a clip's vector."""

from __future__ import annotations

import time

import pytest
import torch

from crossfuse.backbones import build_backbone
from crossfuse.errors import CrossfuseError


def _padding_gap(backbone, long_samples: int, short_samples: int) -> float:
    torch.manual_seed(0)
    clips = [torch.randn(long_samples), torch.randn(short_samples)]
    with torch.no_grad():
        batch = backbone(**backbone.featurize(clips))
        alone = backbone(**backbone.featurize(clips[1:]))
    assert batch.shape == (2, backbone.feature_dim)
    return float((batch[1] - alone[0]).abs().max())


def test_featurize_pads_clips_and_keeps_their_lengths():
    backbone = build_backbone("mel-cnn")
    batch = backbone.featurize([torch.ones(3000), torch.ones(2000)])
    assert batch["waveforms"].shape == (2, 3000) and batch["lengths"].tolist() == [3000, 2000]
    assert torch.all(batch["waveforms"][1, 2000:] == 0)
    assert backbone.featurize([torch.ones(10)])["lengths"].item() == backbone.min_samples  # too short: padded
    with pytest.raises(CrossfuseError, match="1-D mono"):
        backbone.featurize([torch.ones(2, 100)])


def test_mel_cnn_frontend_and_encoder_are_separate_steps():
    backbone = build_backbone("mel-cnn").eval()
    assert backbone.features_kind == "spectrogram" and backbone.sample_rate == 16_000
    batch = backbone.featurize([torch.randn(8000), torch.randn(4000)])
    features, frames = backbone.frontend(batch["waveforms"], batch["lengths"])
    assert features.shape == (2, 40, 51) and frames.tolist() == [51, 26]
    masked = features.clone()
    masked[:, :5] = 0  # a task's SpecAugment goes here
    with torch.no_grad():
        assert backbone.encode(masked, frames).shape == (2, 64)
        assert torch.allclose(backbone.encode(features, frames), backbone(**batch))


def test_mel_cnn_padding_does_not_change_a_clip():
    assert _padding_gap(build_backbone("mel-cnn").eval(), 16_000, 5_000) < 1e-4


@pytest.mark.parametrize("name", ["wav2vec2-base", "hubert-base"])
def test_ssl_encoder_random_init_runs_and_ignores_padding(name):
    started = time.time()
    backbone = build_backbone(name, pretrained=False).eval()
    assert backbone.features_kind == "waveform" and backbone.feature_dim == 768 and backbone.sample_rate == 16_000
    assert backbone.model.encoder.transformer.layer_drop == 0.0  # DDP needs every layer in every step
    assert _padding_gap(backbone, 8_000, 5_000) < 1e-4  # a 0.5 s clip and a shorter one
    assert time.time() - started < 30


def test_ssl_pretrained_weights_offline_fail_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    started = time.time()
    with pytest.raises(CrossfuseError, match="pretrained=false"):
        build_backbone("wav2vec2-base", pretrained=True)
    assert time.time() - started < 5
