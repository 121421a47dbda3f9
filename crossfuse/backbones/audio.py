"""The audio backbone interface, its masking helpers, and the mel-spectrogram CNN.

An audio backbone turns clips into one vector each in two steps a task can step between
(SpecAugment, mixing in noise):

- ``featurize(clips)`` (in a collate function): 1-D float clips at ``sample_rate`` ->
  ``{"waveforms": [B, T] zero-padded, "lengths": [B]}``;
- ``frontend(waveforms, lengths)``: waveforms -> model input features and their valid lengths
  (log-mel ``[B, n_mels, frames]`` when ``features_kind == "spectrogram"``, normalised waveforms
  ``[B, T]`` when it is ``"waveform"``), in torch on the model's device;
- ``encode(features, feature_lengths)``: the encoder, pooled over valid frames only, -> ``[B, D]``.

``forward(waveforms, lengths)`` is ``encode(*frontend(waveforms, lengths))``. Padding never changes
a clip's vector (in eval mode): a clip alone and the same clip in a padded batch agree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch
from torch import nn

from ..config import BackboneConfig
from ..errors import CrossfuseError

DEFAULT_SAMPLE_RATE = 16_000


class AudioBackbone(nn.Module, ABC):
    """Base class of audio backbones; subclasses set the attributes and write ``frontend`` and ``encode``."""

    modality = "audio"
    features_kind = "waveform"  # or "spectrogram"
    feature_dim: int
    sample_rate: int
    min_samples = 1  # shorter clips are zero-padded to this by featurize (the encoder's receptive field)

    def featurize(self, clips: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Zero-pad mono clips (1-D float tensors at ``sample_rate``) into one batch with their lengths."""
        if len(clips) == 0:
            raise CrossfuseError("featurize: got no audio clips")
        tensors = [torch.as_tensor(clip, dtype=torch.float32) for clip in clips]
        for index, clip in enumerate(tensors):
            if clip.dim() != 1:
                raise CrossfuseError(f"featurize: clip {index} has shape {list(clip.shape)}; expected a 1-D mono "
                                     f"waveform (average the channels first)")
        lengths = torch.tensor([max(len(clip), self.min_samples) for clip in tensors])
        waveforms = torch.zeros(len(tensors), int(lengths.max()))
        for row, clip in zip(waveforms, tensors):
            row[: len(clip)] = clip
        return {"waveforms": waveforms, "lengths": lengths}

    @abstractmethod
    def frontend(self, waveforms: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms ``[B, T]`` -> (features, valid length of each clip's features)."""

    @abstractmethod
    def encode(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Features -> one vector per clip ``[B, D]``, pooled over each clip's valid frames."""

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(*self.frontend(waveforms, lengths))


def full_lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``lengths`` on ``x``'s device, or every item's full length (the last axis) when None."""
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
    return lengths.to(device=x.device, dtype=torch.long)


def time_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, steps]`` booleans, True where a step is inside its item's length."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``[B, T, D]`` over each item's first ``lengths`` steps -> ``[B, D]``."""
    mask = time_mask(lengths.clamp(min=1), hidden.shape[1]).unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1)


def normalize_clips(waveforms: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Zero mean, unit variance per clip over its valid samples; padding stays zero (transformers' recipe)."""
    mask = time_mask(lengths, waveforms.shape[1]).to(waveforms.dtype)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (waveforms * mask).sum(dim=1, keepdim=True) / count
    var = (((waveforms - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
    return (waveforms - mean) / torch.sqrt(var + eps) * mask


class MelCNN(AudioBackbone):
    """Log-mel spectrogram (torchaudio) followed by a small 2-D CNN, averaged over the clip's frames."""

    features_kind = "spectrogram"

    def __init__(self, sample_rate: int, n_mels: int = 40, width: int = 64, hop_length: int = 160):
        super().__init__()
        import torchaudio

        self.sample_rate = sample_rate
        self.feature_dim = width
        self.hop_length = hop_length
        # Zero ("constant") padding at the edges: a lone clip's frames then match the same clip's frames in a
        # zero-padded batch exactly, so padding cannot change its features.
        self.melspec = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=512, hop_length=hop_length,
                                                            n_mels=n_mels, pad_mode="constant")
        self.to_db = torchaudio.transforms.AmplitudeToDB()
        channels = [1, width // 4, width // 2, width]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
            for c_in, c_out in zip(channels, channels[1:]))
        self.pool = nn.MaxPool2d(2)
        # Each block halves the frames; a clip needs 2**blocks frames to keep one at the end.
        self.min_samples = (2 ** len(self.blocks) - 1) * hop_length

    def frontend(self, waveforms: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms ``[B, T]`` -> log-mel ``[B, n_mels, frames]`` (dB) and frames per clip."""
        lengths = full_lengths(waveforms, lengths)
        return self.to_db(self.melspec(waveforms)), lengths // self.hop_length + 1

    def encode(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths = full_lengths(features, feature_lengths)
        x = features.unsqueeze(1)
        for block in self.blocks:
            # Zero the padding frames before each convolution, as the zero border a lone clip gets.
            x = x * time_mask(lengths, x.shape[-1])[:, None, None, :].to(x.dtype)
            x = self.pool(block(x))
            lengths = lengths // 2
        return masked_mean(x.mean(dim=2).transpose(1, 2), lengths)


def build_mel_cnn(config: BackboneConfig) -> MelCNN:
    """Mel-spectrogram CNN with random weights (64-d): small, fast, trained from scratch."""
    return MelCNN(config.sample_rate or DEFAULT_SAMPLE_RATE)
