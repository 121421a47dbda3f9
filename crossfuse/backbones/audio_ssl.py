"""wav2vec 2.0 and HuBERT encoders from torchaudio: pretrained bundles, or the bare architectures at random init."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from ..config import BackboneConfig
from .audio import AudioBackbone, full_lengths, masked_mean, normalize_clips
from .hub import ensure_downloadable


class TorchaudioSSLBackbone(AudioBackbone):
    """A torchaudio ``Wav2Vec2Model`` (wav2vec 2.0, HuBERT, WavLM): waveforms -> mean of the last layer's frames."""

    features_kind = "waveform"
    min_samples = 400  # the convolutional front end's receptive field (25 ms at 16 kHz)

    def __init__(self, model: nn.Module, sample_rate: int, normalize_waveform: bool = False):
        super().__init__()
        self.model = model
        self.sample_rate = sample_rate
        self.normalize_waveform = normalize_waveform
        self.feature_dim = int(model.encoder.transformer.layers[-1].final_layer_norm.normalized_shape[0])
        # LayerDrop skips whole layers at random: their parameters then get no gradient, which DDP refuses.
        model.encoder.transformer.layer_drop = 0.0
        # GroupNorm in the first convolution normalises each channel over the whole clip, padding included.
        first = model.feature_extractor.conv_layers[0]
        self.group_norm = isinstance(getattr(first, "layer_norm", None), nn.GroupNorm)

    def frontend(self, waveforms: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-clip normalisation when the pretrained model expects it; otherwise the waveforms as they are."""
        lengths = full_lengths(waveforms, lengths)
        if self.normalize_waveform:
            waveforms = normalize_clips(waveforms, lengths, eps=1e-5)
        return waveforms, lengths

    def encode(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths = full_lengths(features, feature_lengths)
        frames, frame_lengths = self._conv_features(features, lengths)
        hidden = self.model.encoder(frames, frame_lengths)  # masks the padded frames in attention
        return masked_mean(hidden, frame_lengths)

    def _conv_features(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        extractor = self.model.feature_extractor
        if not self.group_norm or bool((lengths == waveforms.shape[1]).all()):
            return extractor(waveforms, lengths)
        # Run the convolutions clip by clip, each on its own samples, so GroupNorm never sees padding.
        parts = [extractor(row[None, :length], None)[0][0] for row, length in zip(waveforms, lengths.tolist())]
        frame_lengths = torch.tensor([len(part) for part in parts], device=waveforms.device)
        return pad_sequence(parts, batch_first=True), frame_lengths


def torchaudio_builder(bundle_name: str, factory_name: str):
    """A builder for a torchaudio SSL encoder: pretrained bundle weights, or the bare architecture."""

    def builder(config: BackboneConfig) -> TorchaudioSSLBackbone:
        import torchaudio

        bundle = getattr(torchaudio.pipelines, bundle_name)
        if not config.pretrained:
            model = getattr(torchaudio.models, factory_name)()
            return TorchaudioSSLBackbone(model, bundle.sample_rate)
        url = f"https://download.pytorch.org/torchaudio/models/{bundle._path}"
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(bundle._path).name
        if not cached.is_file():
            ensure_downloadable(url, f"torchaudio weights {bundle_name}",
                                f"Put {cached.name} in {cached.parent}, or set backbone.pretrained=false "
                                f"to train from random init.")
        model = bundle.get_model()
        # Large bundles wrap the model to normalise the waveform; we do that step in frontend().
        normalize = bool(getattr(model, "normalize_waveform", False))
        return TorchaudioSSLBackbone(getattr(model, "model", model), bundle.sample_rate, normalize)

    builder.__doc__ = f"torchaudio {bundle_name} encoder, mean-pooled over time."
    return builder
