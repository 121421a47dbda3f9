"""Clips as tensors: loading, pad or crop, and the keyword-spotting augmentations.

Waveform transforms work on one mono clip ``[T]`` and draw from ``generator`` when given (else
torch's global generator), so a seeded generator repeats them exactly. SpecAugment works on a
batch of log-mel features ``[B, n_mels, frames]`` with torchaudio's masking transforms, which
draw from the global generator (``torch.manual_seed`` repeats them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from crossfuse.media import load_audio

from .actions import SILENCE


def pad_or_crop(waveform: torch.Tensor, length: int) -> torch.Tensor:
    """``waveform`` made exactly ``length`` samples: zeros appended, or the loudest ``length``-long
    stretch kept (a longer recording usually has its word somewhere in the middle)."""
    if waveform.numel() < length:
        return torch.nn.functional.pad(waveform, (0, length - waveform.numel()))
    if waveform.numel() == length:
        return waveform
    energy = torch.cumsum(torch.nn.functional.pad(waveform.double() ** 2, (1, 0)), dim=0)
    start = int(torch.argmax(energy[length:] - energy[:-length]))
    return waveform[start: start + length]


def pad_or_crop_at(waveform: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """``waveform[start:start + length]``, zero-padded when the recording ends sooner."""
    piece = waveform[start: start + length]
    return torch.nn.functional.pad(piece, (0, length - piece.numel()))


def time_shift(waveform: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Move the clip by a random whole number of samples in ``[-max_shift, max_shift]``, zero-filled
    (the same length comes out)."""
    if max_shift <= 0:
        return waveform
    shift = int(torch.randint(-max_shift, max_shift + 1, (1,), generator=generator))
    shifted = torch.zeros_like(waveform)
    if shift >= 0:
        shifted[shift:] = waveform[: waveform.numel() - shift]
    else:
        shifted[:shift] = waveform[-shift:]
    return shifted


def random_gain(waveform: torch.Tensor, low_db: float, high_db: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The clip scaled by a gain drawn uniformly in decibels from ``[low_db, high_db]``."""
    gain_db = low_db + (high_db - low_db) * float(torch.rand((), generator=generator))
    return waveform * 10 ** (gain_db / 20)


def mix_noise(waveform: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``waveform`` plus ``noise`` (same length) scaled so the ratio of their mean powers is ``snr_db``.

    A silent clip (no power to measure against) comes back unchanged.
    """
    speech_power = waveform.pow(2).mean()
    noise_power = noise.pow(2).mean()
    if speech_power <= 1e-10 or noise_power <= 1e-10:
        return waveform
    scale = torch.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return waveform + scale * noise


class NoiseBank:
    """Background-noise recordings, loaded once at ``sample_rate``, for silence crops and mixing."""

    def __init__(self, paths: Sequence[str | Path], sample_rate: int):
        self.paths = [str(p) for p in paths]
        self.sample_rate = sample_rate
        self._loaded: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def waveform(self, path: str | Path) -> torch.Tensor:
        """The whole recording at ``path`` (loaded on first use)."""
        path = str(path)
        if path not in self._loaded:
            self._loaded[path] = load_audio(path, self.sample_rate)[0]
        return self._loaded[path]

    def crop(self, path: str | Path, start: int, length: int) -> torch.Tensor:
        """``length`` samples of the recording from sample ``start`` (zero-padded past its end)."""
        return pad_or_crop_at(self.waveform(path), start, length)

    def random_crop(self, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``length`` samples from a random place of a random recording."""
        path = self.paths[int(torch.randint(len(self.paths), (1,), generator=generator))]
        total = self.waveform(path).numel()
        start = int(torch.randint(max(1, total - length + 1), (1,), generator=generator))
        return self.crop(path, start, length)


def load_clip(clip: Any, sample_rate: int, length: int, noise: NoiseBank | None = None) -> torch.Tensor:
    """A :class:`~crossfuse_smarthome.speech_commands.VoiceClip` as ``length`` samples at
    ``sample_rate``: a word clip padded or cropped, a silence example cut from its noise file."""
    if clip.label == SILENCE:
        noise = noise if noise is not None else NoiseBank([clip.path], sample_rate)
        return noise.crop(clip.path, int(round(clip.start * sample_rate)), length) * clip.gain
    waveform, _ = load_audio(clip.path, sample_rate)
    return pad_or_crop(waveform, length)


class WaveAugment:
    """Training augmentation of one clip: random gain, time shift, then background noise at a
    random SNR, each as switched on in ``config`` (:class:`~crossfuse_smarthome.config.AugmentConfig`)."""

    def __init__(self, config: Any, sample_rate: int, noise: NoiseBank | None = None):
        self.config = config
        self.max_shift = int(config.shift_ms * sample_rate / 1000)
        self.noise = noise if noise is not None and len(noise) else None

    def __call__(self, waveform: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        config = self.config
        if config.gain:
            waveform = random_gain(waveform, *config.gain_db, generator=generator)
        if config.time_shift:
            waveform = time_shift(waveform, self.max_shift, generator)
        if config.noise and self.noise is not None and float(torch.rand((), generator=generator)) < \
                config.noise_probability:
            low, high = config.snr_db
            snr = low + (high - low) * float(torch.rand((), generator=generator))
            waveform = mix_noise(waveform, self.noise.random_crop(waveform.numel(), generator), snr)
        return waveform


class SpecAugment(nn.Module):
    """SpecAugment masks on log-mel features ``[B, n_mels, frames]`` in training mode only: each
    example gets its own frequency and time masks, filled with the batch's mean value."""

    def __init__(self, config: Any):
        super().__init__()
        import torchaudio

        self.enabled = bool(config.spec_augment)
        self.freq = nn.ModuleList(torchaudio.transforms.FrequencyMasking(config.freq_mask_width, iid_masks=True)
                                  for _ in range(config.freq_masks if config.freq_mask_width > 0 else 0))
        self.time = nn.ModuleList(torchaudio.transforms.TimeMasking(config.time_mask_width, iid_masks=True)
                                  for _ in range(config.time_masks if config.time_mask_width > 0 else 0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.enabled):
            return features
        fill = float(features.mean())  # a zero fill would be a loud patch in log-mel units
        for mask in [*self.freq, *self.time]:
            features = mask(features, mask_value=fill)
        return features
