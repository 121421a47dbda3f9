"""Audio backbones from transformers: waveform encoders (wav2vec2, HuBERT, WavLM ...) and Whisper's encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import BackboneConfig
from ..errors import CrossfuseError
from .audio import AudioBackbone, full_lengths, masked_mean, normalize_clips, time_mask
from .hf_source import files_hint, load_hf_model, reason


class HFWaveformBackbone(AudioBackbone):
    """A transformers encoder over raw waveforms (``input_values``), mean-pooled over the clip's frames.

    Models whose feature extractor returns an attention mask run as one padded, masked batch.
    The others (wav2vec2-base and kin: GroupNorm over time in the first convolution) were
    trained without padding; they run on clips of equal length together, each group unpadded.
    """

    features_kind = "waveform"
    min_samples = 400  # the convolutional front end's receptive field (25 ms at 16 kHz)

    def __init__(self, model: nn.Module, extractor: Any, hf_config: Any):
        super().__init__()
        self.model = model
        self.extractor = extractor
        self.hf_config = hf_config
        self.sample_rate = int(extractor.sampling_rate)
        self.feature_dim = int(model.config.hidden_size)
        self.normalize = bool(getattr(extractor, "do_normalize", False))
        self.masked = bool(getattr(extractor, "return_attention_mask", False)) and \
            hasattr(model, "_get_feat_extract_output_lengths")

    def frontend(self, waveforms: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-clip zero mean, unit variance when the feature extractor normalises; else unchanged."""
        lengths = full_lengths(waveforms, lengths)
        if self.normalize:
            waveforms = normalize_clips(waveforms, lengths)
        return waveforms, lengths

    def encode(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths = full_lengths(features, feature_lengths)
        if self.masked:
            features = features[:, : int(lengths.max())]
            hidden = self.model(features, attention_mask=time_mask(lengths, features.shape[1]).long()).last_hidden_state
            return masked_mean(hidden, self.model._get_feat_extract_output_lengths(lengths))
        groups = [(lengths == length).nonzero().squeeze(1) for length in lengths.unique().tolist()]
        pooled = [self.model(features[index, : int(lengths[index[0]])]).last_hidden_state.mean(dim=1)
                  for index in groups]
        order = torch.cat(groups).argsort()  # back to the batch's order
        return torch.cat(pooled)[order]

    def save_architecture(self, directory: str | Path) -> None:
        """Write the model config and the feature extractor (no weights) so a run can be rebuilt offline."""
        self.hf_config.save_pretrained(str(directory))
        self.extractor.save_pretrained(str(directory))


class WhisperEncoderBackbone(AudioBackbone):
    """Whisper's encoder alone: log-mel front end as Whisper's feature extractor computes it, pooled over audio.

    Every clip is padded (or cut) to the encoder's fixed window (``2 * max_source_positions``
    frames, 30 s for the released models), as Whisper was trained; the pooling then keeps the
    frames that hold the clip.
    """

    features_kind = "spectrogram"

    def __init__(self, encoder: nn.Module, extractor: Any, hf_config: Any):
        super().__init__()
        self.encoder = encoder
        self.extractor = extractor
        self.hf_config = hf_config
        self.sample_rate = int(extractor.sampling_rate)
        self.feature_dim = int(hf_config.d_model)
        self.n_fft = int(extractor.n_fft)
        self.hop_length = int(extractor.hop_length)
        self.frame_stride = int(encoder.conv1.stride[0] * encoder.conv2.stride[0])
        self.frames = int(hf_config.max_source_positions) * self.frame_stride
        self.min_samples = self.hop_length
        # Not saved with the weights: both are computed from the feature extractor's settings.
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("mel_filters", torch.as_tensor(extractor.mel_filters, dtype=torch.float32),
                             persistent=False)

    def frontend(self, waveforms: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms -> Whisper log-mel ``[B, n_mels, 2 * max_source_positions]`` and frames holding audio."""
        lengths = full_lengths(waveforms, lengths)
        samples = self.frames * self.hop_length
        waveforms = nn.functional.pad(waveforms, (0, max(0, samples - waveforms.shape[1])))[:, :samples]
        stft = torch.stft(waveforms.float(), self.n_fft, self.hop_length, window=self.window, return_complex=True)
        power = (stft[..., :-1].abs() ** 2).contiguous()
        log_mel = torch.clamp(self.mel_filters.T @ power, min=1e-10).log10()
        peak = log_mel.amax(dim=(1, 2), keepdim=True)
        log_mel = (torch.maximum(log_mel, peak - 8.0) + 4.0) / 4.0
        frames = torch.div(lengths.clamp(max=samples) + self.hop_length - 1, self.hop_length, rounding_mode="floor")
        return log_mel, frames

    def encode(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths = full_lengths(features, feature_lengths)
        hidden = self.encoder(input_features=features).last_hidden_state
        positions = torch.div(lengths + self.frame_stride - 1, self.frame_stride, rounding_mode="floor")
        return masked_mean(hidden, positions)

    def save_architecture(self, directory: str | Path) -> None:
        """Write the (whole) model config and the feature extractor, no weights."""
        self.hf_config.save_pretrained(str(directory))
        self.extractor.save_pretrained(str(directory))


def build_hf_audio(source: str, config: BackboneConfig, hf_config: Any, options: dict[str, Any]) -> AudioBackbone:
    """The audio backbone of ``source`` once its config is read (see :func:`~.hf_source.load_hf_config`)."""
    from transformers import AutoFeatureExtractor, WhisperFeatureExtractor

    try:
        extractor = AutoFeatureExtractor.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise CrossfuseError(f"could not load the feature extractor of {source!r}: {reason(exc)}. "
                             f"{files_hint(source, 'the feature extractor')}") from None
    whisper = isinstance(extractor, WhisperFeatureExtractor)
    if not whisper and extractor.model_input_names[0] != "input_values":
        raise CrossfuseError(f"audio model {source!r} ({hf_config.model_type}, {type(extractor).__name__}) is not "
                             f"supported: crossfuse runs waveform encoders (wav2vec2, HuBERT, WavLM, data2vec-audio "
                             f"...) and Whisper's encoder")
    if hasattr(hf_config, "layerdrop"):
        # LayerDrop skips whole layers at random: their parameters then get no gradient, which DDP refuses.
        hf_config.layerdrop = 0.0
    model = load_hf_model(source, hf_config, config, options)
    if getattr(hf_config, "is_encoder_decoder", False):
        model = model.get_encoder()
    if whisper:
        return WhisperEncoderBackbone(model, extractor, hf_config)
    return HFWaveformBackbone(model, extractor, hf_config)
