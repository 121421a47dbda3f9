"""The keyword spotter: an audio backbone's front end, SpecAugment, its encoder, and a classifier.

SpecAugment sits between the front end and the encoder (the audio backbone interface keeps them
apart for that) and masks only in training mode; for a backbone whose features are waveforms
(wav2vec2, HuBERT) there is no spectrogram to mask and it is left out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from crossfuse.backbones.audio import full_lengths, time_mask
from crossfuse.heads import build_head


def mean_normalize(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Log-mel features ``[B, n_mels, frames]`` minus each clip's mean per band over its valid frames
    (padding stays zero): a fixed colouring of the voice or the microphone cancels out."""
    valid = time_mask(full_lengths(features, lengths), features.shape[-1]).unsqueeze(1).to(features.dtype)
    mean = (features * valid).sum(dim=-1, keepdim=True) / valid.sum(dim=-1, keepdim=True).clamp(min=1)
    return (features - mean) * valid


class KeywordSpotter(nn.Module):
    """``waveforms [B, T]`` (and their lengths) -> class logits ``[B, classes]``.

    ``head`` is a :func:`crossfuse.heads.build_head` kind (``linear`` or ``mlp``) on the backbone's
    ``feature_dim``; ``spec_augment`` a module applied to spectrogram features in training mode;
    ``feature_norm`` ``"mean"`` subtracts each clip's mean log-mel per band.
    """

    def __init__(self, backbone: nn.Module, classes: int, spec_augment: nn.Module | None = None,
                 head: str = "linear", hidden: int = 128, dropout: float = 0.1, feature_norm: str = "none"):
        super().__init__()
        self.backbone = backbone
        spectrogram = getattr(backbone, "features_kind", "") == "spectrogram"
        self.spec_augment = spec_augment if spectrogram else None
        self.feature_norm = feature_norm if spectrogram else "none"
        self.head = build_head(head, backbone.feature_dim, classes, hidden=hidden, dropout=dropout)

    def features(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
        """The front end's features (normalised as configured, not augmented) and their lengths."""
        features, feature_lengths = self.backbone.frontend(waveforms, lengths)
        if self.feature_norm == "mean":
            features = mean_normalize(features, feature_lengths)
        return features, feature_lengths

    def classify(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from front-end features (where explanations take their gradients)."""
        return self.head(self.backbone.encode(features, feature_lengths))

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        features, feature_lengths = self.features(waveforms, lengths)
        if self.spec_augment is not None:
            features = self.spec_augment(features)
        return self.classify(features, feature_lengths)


def probabilities(model: Any, waveforms: torch.Tensor) -> torch.Tensor:
    """Class probabilities of equally long clips ``[B, T]`` on the model's device (for streaming)."""
    device = next(model.parameters()).device
    return model(waveforms.to(device)).float().softmax(-1)
