"""``crossfuse export`` of a keyword-spotting run: the encoder and classifier, from front-end features.

The log-mel front end (torchaudio's ``MelSpectrogram``) computes a complex STFT, which
torch.onnx's TorchScript-based exporter cannot export; the file therefore starts at the features
``KeywordSpotter.features`` makes, and the descriptor says how to compute them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from crossfuse.export import ExportSpec


class Classifier(nn.Module):
    """``KeywordSpotter.classify``: features ``[B, n_mels, frames]`` and frame counts -> logits."""

    def __init__(self, spotter: nn.Module):
        super().__init__()
        self.spotter = spotter

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> torch.Tensor:
        return self.spotter.classify(features, feature_lengths)


class FrontEndThen(nn.Module):
    """The PyTorch front end of ``spotter``, then ``stand_in`` in place of its classifier."""

    def __init__(self, spotter: nn.Module, stand_in: nn.Module):
        super().__init__()
        self.spotter, self.stand_in = spotter, stand_in

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.stand_in(*self.spotter.features(waveforms, lengths))


def front_end(spotter: nn.Module) -> dict[str, Any]:
    """The front end's settings: the mel spectrogram's parameters (when it has one) and the normalisation."""
    described: dict[str, Any] = {"features_kind": getattr(spotter.backbone, "features_kind", ""),
                                 "feature_norm": spotter.feature_norm}
    for module in spotter.backbone.modules():
        if type(module).__name__ == "MelSpectrogram":
            described.update(sample_rate=module.sample_rate, n_fft=module.n_fft, win_length=module.win_length,
                             hop_length=module.hop_length, n_mels=module.n_mels, f_min=module.f_min,
                             f_max=module.f_max, log="natural log of (mel power + 1e-6)")
    return described


def spotter_spec(task: Any, model: nn.Module, batch: dict[str, Any]) -> ExportSpec:
    """The export of a smarthome-voice-commands model (see the module docstring)."""
    with torch.no_grad():
        features, frames = model.features(batch["waveforms"], batch["lengths"])
    settings = ", ".join(f"{k}={v}" for k, v in front_end(model).items())
    return ExportSpec(
        module=Classifier(model).eval(), inputs={"features": features, "feature_lengths": frames},
        output_names=["logits"],
        dynamic_axes={"features": {0: "batch", 2: "frames"}, "feature_lengths": {0: "batch"},
                      "logits": {0: "batch"}},
        install=lambda spotter, stand_in: FrontEndThen(spotter, stand_in),
        part="the audio encoder and classifier, from front-end features",
        outputs={"logits": "[batch, classes] in the order of the task state's labels; probabilities = "
                           "softmax(logits / temperature) with the task state's temperature"},
        left_out=f"the audio front end (the STFT inside it does not export to ONNX): the caller turns 1-D mono "
                 f"clips into features [batch, n_mels, frames] and frame counts as KeywordSpotter.features does "
                 f"({settings}; features past a clip's frame count are zero)")
