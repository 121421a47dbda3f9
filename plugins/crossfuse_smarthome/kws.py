"""BC-ResNet: a small keyword-spotting network on a log-mel front end, as an audio backbone.

Broadcasted residual learning (Kim et al., Interspeech 2021, arXiv:2106.04140): each block runs a
depthwise convolution along frequency on the 2-D features, averages over frequency, runs a
dilated depthwise convolution along time on that 1-D summary and broadcasts it back. BC-ResNet-τ
has 8τ to 20τ channels and about 9 k (τ = 1) to 320 k (τ = 8) parameters. This one stops before
the classifier: :meth:`BCResNet.encode` returns a ``32τ``-d vector per clip (the task puts the
classification head on it).

Padding invariance: activations past a clip's last valid frame are zeroed before every
convolution that mixes time, and pooling averages over valid frames only, so in eval mode a clip
zero-padded into a batch gets the features it gets alone. The front end makes that possible with
a centred STFT padded with zeros (not reflected) at the clip's ends.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from crossfuse.backbones.audio import AudioBackbone, full_lengths, masked_mean, time_mask

from . import BC_RESNET_WIDTHS  # noqa: F401 - the registered sizes, re-exported

N_MELS = 40  # three halvings of 40 bins leave 5: the sub-spectral norm's 5 sub-bands
N_FFT, WINDOW, HOP = 512, 480, 160  # 30 ms windows every 10 ms at 16 kHz
SUB_BANDS = 5
DEFAULT_SAMPLE_RATE = 16000


def _mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the frames (last axis) at or past each example's length: the zero border a lone clip's
    convolutions would see."""
    valid = time_mask(lengths, x.shape[-1])
    return x * valid.view(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1]).to(x.dtype)


class SubSpectralNorm(nn.Module):
    """Batch norm with separate statistics for each of ``sub_bands`` frequency bands."""

    def __init__(self, channels: int, sub_bands: int = SUB_BANDS):
        super().__init__()
        self.sub_bands = sub_bands
        self.norm = nn.BatchNorm2d(channels * sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, freq, time = x.shape
        x = self.norm(x.reshape(batch, channels * self.sub_bands, freq // self.sub_bands, time))
        return x.reshape(batch, channels, freq, time)


class BroadcastBlock(nn.Module):
    """One BC-ResNet block. A transition block (``in_channels != channels`` or a frequency
    stride) changes the shape and has no identity shortcut; a normal block keeps both."""

    def __init__(self, in_channels: int, channels: int, dilation: int, stride: int = 1, dropout: float = 0.1):
        super().__init__()
        self.transition = in_channels != channels or stride != 1
        entry = [nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.entry = nn.Sequential(*entry) if self.transition else nn.Identity()
        self.frequency = nn.Sequential(
            nn.Conv2d(channels, channels, (3, 1), stride=(stride, 1), padding=(1, 0), groups=channels, bias=False),
            SubSpectralNorm(channels))
        self.temporal = nn.Conv2d(channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation),
                                  groups=channels, bias=False)
        self.mix = nn.Sequential(nn.BatchNorm2d(channels), nn.SiLU(inplace=True),
                                 nn.Conv2d(channels, channels, 1, bias=False), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.frequency(self.entry(x))
        summary = _mask(x.mean(dim=2, keepdim=True), lengths)
        out = x + self.mix(self.temporal(summary))
        if not self.transition:
            out = out + shortcut
        return torch.relu(out)


class LogMel(nn.Module):
    """Waveforms ``[B, T]`` -> natural-log mel energies ``[B, n_mels, frames]`` and frame counts."""

    def __init__(self, sample_rate: int, n_mels: int = N_MELS):
        super().__init__()
        import torchaudio

        scale = sample_rate / DEFAULT_SAMPLE_RATE  # keep 30 ms / 10 ms windows at any rate
        self.hop = max(1, round(HOP * scale))
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=max(round(N_FFT * scale), round(WINDOW * scale)),
            win_length=round(WINDOW * scale), hop_length=self.hop, n_mels=n_mels, f_min=20.0,
            f_max=sample_rate / 2, center=True, pad_mode="constant")

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
        features = torch.log(self.mel(waveforms) + 1e-6)
        frames = torch.div(full_lengths(waveforms, lengths), self.hop, rounding_mode="floor") + 1
        return _mask(features, frames), frames


class BCResNet(AudioBackbone):
    """BC-ResNet-τ as a crossfuse audio backbone (``featurize`` and ``forward`` come from the base class)."""

    features_kind = "spectrogram"

    def __init__(self, tau: float = 3, sample_rate: int = DEFAULT_SAMPLE_RATE, n_mels: int = N_MELS,
                 dropout: float = 0.1):
        super().__init__()
        if n_mels % (8 * SUB_BANDS):
            raise ValueError(f"n_mels must be a multiple of {8 * SUB_BANDS}, got {n_mels}")
        width = [max(1, round(8 * tau * m)) for m in (2, 1, 1.5, 2, 2.5, 4)]
        self.sample_rate = sample_rate
        self.feature_dim = width[-1]
        self.logmel = LogMel(sample_rate, n_mels)
        self.stem = nn.Sequential(nn.Conv2d(1, width[0], 5, stride=(2, 1), padding=2, bias=False),
                                  nn.BatchNorm2d(width[0]), nn.ReLU(inplace=True))
        blocks, channels = [], width[0]
        for stage, (repeats, stride) in enumerate(zip((2, 2, 4, 4), (1, 2, 2, 1))):
            for index in range(repeats):
                blocks.append(BroadcastBlock(channels, width[stage + 1], 2 ** stage,
                                             stride if index == 0 else 1, dropout))
                channels = width[stage + 1]
        self.blocks = nn.ModuleList(blocks)
        bands = n_mels // 8  # the stem and two stages halve the frequency axis
        self.head_conv = nn.Conv2d(channels, channels, (bands, 5), padding=(0, 2), groups=channels, bias=False)
        self.head = nn.Sequential(nn.Conv2d(channels, width[-1], 1, bias=False), nn.BatchNorm2d(width[-1]),
                                  nn.ReLU(inplace=True))

    def frontend(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor,
                                                                                                torch.Tensor]:
        """Log-mel features ``[B, n_mels, frames]`` (zero past each clip's end) and frame counts ``[B]``."""
        return self.logmel(waveforms, lengths)

    def encode(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Clip vectors ``[B, feature_dim]``: the network over the features, averaged over valid frames."""
        lengths = full_lengths(features, feature_lengths)
        x = self.stem(_mask(features, lengths).unsqueeze(1))
        for block in self.blocks:
            x = block(_mask(x, lengths), lengths)
        x = self.head(self.head_conv(_mask(x, lengths))).squeeze(2)  # [B, C, frames]
        return masked_mean(x.transpose(1, 2), lengths)


def bc_resnet_builder(tau: float):
    """A backbone builder for BC-ResNet-``tau``: random init (no public weights exist to load;
    ``backbone.weights`` loads a local state dict through the core)."""

    def build(config: Any) -> BCResNet:
        return BCResNet(tau, getattr(config, "sample_rate", None) or DEFAULT_SAMPLE_RATE)

    build.__doc__ = f"BC-ResNet-{tau:g} keyword-spotting network on 40 log-mel bins, random init."
    return build


# The registry's lazy targets ("crossfuse_smarthome.kws:build_bc_resnet_3"), one per registered size.
build_bc_resnet_1 = bc_resnet_builder(1)
build_bc_resnet_1_5 = bc_resnet_builder(1.5)
build_bc_resnet_2 = bc_resnet_builder(2)
build_bc_resnet_3 = bc_resnet_builder(3)
build_bc_resnet_6 = bc_resnet_builder(6)
build_bc_resnet_8 = bc_resnet_builder(8)


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
