"""Streaming detection over long audio and false accepts per hour, with stand-in classifiers.

The stand-in "hears" a command when its tone is in the window: each command is a tone of its
own pitch, and the probability of a command is the share of that tone's full energy the window
holds. So a command scores 1 only in windows that hold all of it, as a trained model would.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossfuse.errors import DataError
from crossfuse_smarthome.streaming import (
    Detection,
    StreamSettings,
    calibrate_threshold,
    command_stream,
    detect_commands,
    false_accept_sources,
    false_accepts_per_hour,
    match_detections,
    pick_detections,
    score_streams,
    smooth,
    window_starts,
)

from voice_files import RATE, tone

LABELS = ["_silence_", "_unknown_", "lights", "music", "on"]
PITCH = {"lights": 500.0, "music": 900.0, "on": 1500.0}
WORD_S = 0.5
FULL_ENERGY = float((tone(500.0, WORD_S).astype(np.float64) ** 2).sum())


def tone_classifier(windows: torch.Tensor) -> torch.Tensor:
    """Per window: each command's share of its tone's energy (by FFT band), the rest is silence."""
    spectrum = torch.fft.rfft(windows.double(), dim=1).abs() ** 2
    frequencies = torch.fft.rfftfreq(windows.shape[1], 1 / RATE)
    shares = []
    for label in LABELS[2:]:
        band = (frequencies - PITCH[label]).abs() < 100
        energy = 2 * spectrum[:, band].sum(dim=1) / windows.shape[1]  # Parseval: back to time-domain energy
        shares.append((energy / FULL_ENERGY).clamp(0, 1))
    commands = torch.stack(shares, dim=1)
    commands = commands / commands.sum(dim=1, keepdim=True).clamp(min=1)
    rest = 1 - commands.sum(dim=1, keepdim=True)
    return torch.cat([rest, torch.zeros_like(rest), commands], dim=1)


def long_recording(script):
    """Silence and commands laid end to end; ``script`` is a list of (command or None, seconds)."""
    pieces, onsets, time = [], [], 0.0
    for command, seconds in script:
        if command is None:
            pieces.append(np.zeros(int(seconds * RATE), np.float32))
        else:
            pieces.append(tone(PITCH[command], seconds))
            onsets.append((command, time))
        time += seconds
    return torch.from_numpy(np.concatenate(pieces)), onsets


def test_each_command_is_found_once_at_its_time_and_nothing_in_the_silence():
    script = [(None, 2.0), ("lights", WORD_S), (None, 1.3), ("on", WORD_S), (None, 4.0), ("music", WORD_S),
              (None, 1.7), ("on", WORD_S), (None, 3.0)]
    waveform, onsets = long_recording(script)
    found = detect_commands(waveform, RATE, tone_classifier, LABELS, StreamSettings(hop_s=0.05))
    assert [d.command for d in found] == [command for command, _ in onsets]
    for detection, (_, onset) in zip(found, onsets):
        assert detection.start <= onset and onset + WORD_S <= detection.end  # the window holds the whole word
        assert detection.score > 0.9
    assert detect_commands(torch.zeros(10 * RATE), RATE, tone_classifier, LABELS) == []


def test_a_recording_shorter_than_one_window_is_an_error_naming_it():
    with pytest.raises(DataError, match=r"kitchen.wav: 0.50 s of audio is shorter than one 1 s detection window"):
        detect_commands(torch.zeros(RATE // 2), RATE, tone_classifier, LABELS, where="kitchen.wav")


def test_windows_cover_the_tail_of_the_recording():
    assert window_starts(25, 10, 5) == [0, 5, 10, 15]
    assert window_starts(27, 10, 5) == [0, 5, 10, 15, 17]


def test_smoothing_is_a_centred_moving_average_that_shrinks_at_the_ends():
    values = np.array([[0.0], [3.0], [6.0], [3.0], [0.0]])
    assert smooth(values, 3)[:, 0].tolist() == pytest.approx([1.5, 3.0, 4.0, 3.0, 1.5])
    assert smooth(values, 1) is values


def probabilities(rows):
    """Rows of (silence, unknown, lights, music, on) probabilities."""
    return np.asarray(rows, dtype=np.float64)


def test_threshold_runs_and_refractory_period():
    settings = StreamSettings(window_s=1.0, threshold=0.6, refractory_s=0.35)
    smoothed = probabilities([
        [0.9, 0.0, 0.1, 0.0, 0.0],   # 0.0 s: silence
        [0.2, 0.0, 0.7, 0.0, 0.1],   # 0.1 s: lights run begins
        [0.1, 0.0, 0.8, 0.0, 0.1],   # 0.2 s: its peak
        [0.2, 0.0, 0.1, 0.0, 0.7],   # 0.3 s: "on" 0.1 s after a stronger command: suppressed
        [0.9, 0.0, 0.0, 0.0, 0.1],
        [0.0, 0.95, 0.0, 0.0, 0.05],  # 0.5 s: unknown never fires
        [0.3, 0.0, 0.0, 0.65, 0.05],  # 0.6 s: music, far enough from lights
        [0.9, 0.0, 0.0, 0.1, 0.0],
    ])
    times = [0.1 * i for i in range(len(smoothed))]
    found = pick_detections(smoothed, times, LABELS, settings)
    assert [(d.command, d.start, d.end, d.score) for d in found] == [("lights", 0.2, 1.2, 0.8), ("music", 0.6, 1.6, 0.65)]


def loud_window_classifier(windows: torch.Tensor) -> torch.Tensor:
    """Fires "on" for any window louder than the quiet noise floor; silence otherwise."""
    loud = (windows.pow(2).mean(dim=1) > 0.05).double()[:, None]
    return torch.cat([1 - loud, torch.zeros_like(loud), torch.zeros_like(loud), torch.zeros_like(loud), loud], dim=1)


def test_false_accepts_per_hour_counts_what_fires_on_noise():
    generator = torch.Generator().manual_seed(0)
    quiet = 0.01 * torch.randn(60 * RATE, generator=generator)
    bursty = quiet.clone()
    for second in (10, 40):  # two loud bangs, 30 s apart: two false accepts
        bursty[second * RATE: (second + 1) * RATE] += 0.5 * torch.randn(RATE, generator=generator)
    result = false_accepts_per_hour({"quiet": quiet, "bangs": bursty}, RATE, loud_window_classifier, LABELS)
    assert result["false_accepts"] == 2
    assert result["per_hour"] == pytest.approx(2 / (120 / 3600))
    assert result["sources"]["bangs"] == {"seconds": 60.0, "false_accepts": 2, "commands": {"on": 2}}
    assert result["sources"]["quiet"]["false_accepts"] == 0


def test_noise_only_sources_add_babble_made_of_unknown_words():
    noise = {"hum.wav": torch.zeros(3 * RATE)}
    words = [torch.from_numpy(tone(f, 0.4)) for f in (200.0, 300.0)]
    sources = false_accept_sources(noise, words, RATE, babble_seconds=5.0)
    assert set(sources) == {"hum.wav", "unknown-words-1-talker", "unknown-words-4-talkers"}
    assert sources["unknown-words-1-talker"].shape == (5 * RATE,)
    assert float(sources["unknown-words-4-talkers"].pow(2).mean().sqrt()) == pytest.approx(0.1, rel=1e-3)


def test_calibration_picks_the_lowest_threshold_that_meets_the_false_accept_target():
    generator = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.randn(60 * RATE, generator=generator)
    # Bangs whose strength grows: a window classifier that maps loudness to "on" fires on the
    # loud ones at a low threshold and on fewer as the threshold rises.
    for second, level in ((10, 0.15), (25, 0.3), (40, 0.45)):  # loudness 0.25, 0.5 and 0.75
        noise[second * RATE: (second + 1) * RATE] += level * torch.randn(RATE, generator=generator)

    def loudness(windows):
        on = (windows.pow(2).mean(dim=1).sqrt() / 0.6).clamp(0, 1).double()[:, None]
        rest = torch.zeros_like(on)
        return torch.cat([1 - on, rest, rest, rest, on], dim=1)

    scored = score_streams({"bangs": noise}, RATE, loudness, StreamSettings(smoothing_s=0.0))
    per_hour = [calibrate_threshold(scored, LABELS, StreamSettings(smoothing_s=0.0), target)
                for target in (200.0, 100.0, 0.0)]
    assert [found["false_accepts"] for found in per_hour] == [2, 1, 0]
    assert per_hour[0]["threshold"] < per_hour[1]["threshold"] < per_hour[2]["threshold"]
    assert all(found["reached"] for found in per_hour) and per_hour[0]["hours"] == pytest.approx(60 / 3600, abs=1e-4)
    louder = calibrate_threshold(scored, LABELS, StreamSettings(smoothing_s=0.0), 0.0, grid=[0.1, 0.2])
    assert louder["threshold"] == 0.2 and not louder["reached"]


def test_a_command_stream_places_each_clip_after_its_gap():
    clips = [("lights", torch.ones(RATE)), ("on", torch.ones(RATE // 2))]
    recording, events = command_stream(clips, 1.0, RATE)
    assert recording.numel() == 4 * RATE + RATE // 2
    assert events == [("lights", 1.0, 2.0), ("on", 3.0, 3.5)]


def test_detections_match_events_of_their_command_once_each():
    events = [("lights", 1.0, 2.0), ("on", 3.0, 4.0), ("music", 5.0, 6.0)]
    found = [Detection("lights", 0.8, 1.8, 0.9), Detection("lights", 1.1, 2.1, 0.8),  # the second is extra
             Detection("music", 3.1, 4.1, 0.9),  # the wrong command over "on"
             Detection("music", 5.2, 6.2, 0.9)]
    assert match_detections(found, events) == {"commands": 3, "detected": 2, "recall": pytest.approx(2 / 3),
                                               "wrong": 2}
