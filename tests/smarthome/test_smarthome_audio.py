"""Waveform and spectrogram augmentation: lengths kept, switches honoured, seeds repeat."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from crossfuse_smarthome.audio import (
    NoiseBank,
    SpecAugment,
    WaveAugment,
    load_clip,
    mix_noise,
    pad_or_crop,
    random_gain,
    time_shift,
)
from crossfuse_smarthome.config import AugmentConfig
from crossfuse_smarthome.speech_commands import VoiceClip

from voice_files import write_wav


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_short_clips_are_padded_with_zeros_at_the_end():
    out = pad_or_crop(torch.ones(10), 16)
    assert out.tolist() == [1.0] * 10 + [0.0] * 6


def test_long_clips_keep_their_loudest_stretch():
    waveform = torch.zeros(100)
    waveform[60:70] = 1.0
    out = pad_or_crop(waveform, 20)
    assert out.shape == (20,) and float(out.sum()) == 10.0


def test_time_shift_moves_the_clip_zero_filled_and_repeats_with_the_seed():
    waveform = torch.arange(1, 101, dtype=torch.float32)
    shifted = time_shift(waveform, 30, generator(3))
    assert shifted.shape == waveform.shape
    assert 0 < int((shifted == 0).sum()) <= 30
    kept = shifted[shifted != 0]
    assert torch.equal(kept, kept[0] + torch.arange(len(kept), dtype=torch.float32))  # one piece, in order
    assert torch.equal(shifted, time_shift(waveform, 30, generator(3)))
    assert torch.equal(time_shift(waveform, 0, generator(3)), waveform)


def test_noise_is_mixed_at_the_requested_snr():
    speech = torch.sin(torch.linspace(0, 200, 16000))
    noise = torch.randn(16000, generator=generator())
    mixed = mix_noise(speech, noise, snr_db=5.0)
    added = mixed - speech
    snr = 10 * torch.log10(speech.pow(2).mean() / added.pow(2).mean())
    assert float(snr) == pytest.approx(5.0, abs=1e-3)
    assert torch.equal(mix_noise(torch.zeros(100), noise[:100], 5.0), torch.zeros(100))  # silence stays silent


def test_random_gain_stays_in_its_decibel_range():
    for seed in range(20):
        gain = float(random_gain(torch.ones(1), -10.0, 6.0, generator(seed)))
        assert 10 ** (-10 / 20) - 1e-6 <= gain <= 10 ** (6 / 20) + 1e-6


@pytest.fixture
def noise_bank(tmp_path):
    samples = (0.1 * torch.randn(48000, generator=generator(1))).numpy()
    return NoiseBank([write_wav(tmp_path / "_background_noise_" / "white.wav", samples)], 16000)


def test_wave_augment_repeats_with_the_seed_and_does_nothing_when_switched_off(noise_bank):
    clip = torch.sin(torch.linspace(0, 300, 16000)) * 0.3
    augment = WaveAugment(AugmentConfig(noise_probability=1.0), 16000, noise_bank)
    first, again = augment(clip, generator(7)), augment(clip, generator(7))
    assert first.shape == clip.shape and torch.equal(first, again) and not torch.equal(first, clip)
    off = WaveAugment(AugmentConfig(time_shift=False, gain=False, noise=False), 16000, noise_bank)
    assert torch.equal(off(clip, generator(7)), clip)


def test_silence_examples_are_crops_of_their_noise_file(noise_bank):
    path = noise_bank.paths[0]
    clip = VoiceClip(path, "_silence_", "_silence_", None, start=1.5, gain=0.25)
    expected = noise_bank.waveform(path)[24000:40000] * 0.25
    assert torch.allclose(load_clip(clip, 16000, 16000, noise_bank), expected)
    assert noise_bank.random_crop(16000, generator()).shape == (16000,)


def spec_config(**values):
    return SimpleNamespace(**{"spec_augment": True, "freq_masks": 2, "freq_mask_width": 7, "time_masks": 2,
                              "time_mask_width": 20, **values})


def test_spec_augment_masks_bands_in_training_only_and_repeats_with_the_seed():
    features = torch.randn(4, 40, 101)
    masks = SpecAugment(spec_config())
    torch.manual_seed(0)
    first = masks(features)
    torch.manual_seed(0)
    assert torch.equal(first, masks(features))
    changed = (first != features)
    assert changed.any() and changed.float().mean() < 0.6
    masks.eval()
    assert torch.equal(masks(features), features)
    assert torch.equal(SpecAugment(spec_config(spec_augment=False))(features), features)
