"""Audio backbones: torchaudio front ends and encoders producing one vector per clip."""

from __future__ import annotations

import torch
from torch import nn

from ..config import BackboneConfig
from .hub import ensure_downloadable

DEFAULT_SAMPLE_RATE = 16_000


class AudioBackbone(nn.Module):
    """Waveforms ``[B, T]`` at ``sample_rate`` -> clip features ``[B, D]``."""

    modality = "audio"

    def __init__(self, encoder: nn.Module, feature_dim: int, sample_rate: int):
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.sample_rate = sample_rate

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.encoder(waveforms)


class MelCNN(nn.Module):
    """Log-mel spectrogram (torchaudio) followed by a small 2-D CNN and global pooling."""

    def __init__(self, sample_rate: int, n_mels: int = 40, width: int = 64):
        super().__init__()
        import torchaudio

        self.melspec = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=512, hop_length=160,
                                                            n_mels=n_mels)
        self.to_db = torchaudio.transforms.AmplitudeToDB()
        blocks: list[nn.Module] = []
        channels = [1, width // 4, width // 2, width]
        for c_in, c_out in zip(channels, channels[1:]):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.cnn = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        features = self.to_db(self.melspec(waveforms)).unsqueeze(1)
        return self.cnn(features)


def build_mel_cnn(config: BackboneConfig) -> AudioBackbone:
    """Mel-spectrogram CNN with random weights (64-d): small, fast, trained from scratch."""
    rate = config.sample_rate or DEFAULT_SAMPLE_RATE
    return AudioBackbone(MelCNN(rate), 64, rate)


class _MeanPooledEncoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        features, _ = self.model.extract_features(waveforms)
        return features[-1].mean(dim=1)


def torchaudio_builder(bundle_name: str, factory_name: str):
    """A builder for a torchaudio SSL encoder: pretrained bundle weights, or the bare architecture."""

    def builder(config: BackboneConfig) -> AudioBackbone:
        import torchaudio

        bundle = getattr(torchaudio.pipelines, bundle_name)
        if config.pretrained:
            url = f"https://download.pytorch.org/torchaudio/models/{bundle._path}"
            from pathlib import Path

            cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(bundle._path).name
            if not cached.is_file():
                ensure_downloadable(url, f"torchaudio weights {bundle_name}",
                                    "Set backbone.pretrained=false to train from random init.")
            model = bundle.get_model()
        else:
            model = getattr(torchaudio.models, factory_name)()
        dim = model.encoder.transformer.layers[-1].final_layer_norm.normalized_shape[0]
        return AudioBackbone(_MeanPooledEncoder(model), dim, bundle.sample_rate)

    builder.__doc__ = f"torchaudio {bundle_name} encoder, mean-pooled over time."
    return builder
