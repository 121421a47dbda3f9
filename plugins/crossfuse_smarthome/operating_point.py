"""The streaming detector on a split: false accepts per hour, command recall, the calibrated threshold.

Two kinds of long recordings are built from a split, so the detector is judged as it is used:

- noise-only audio: every background recording (``_background_noise_``) as it is, plus babble of
  the split's unknown-word clips (one talker, then four at once): whatever fires there is a
  false accept;
- a command stream: the split's command clips end to end with quiet between them: the share of
  commands found (the right command, overlapping its clip) is the streaming recall.

A threshold is only worth as much as both numbers at once, so both are reported; calibration
picks the lowest threshold that keeps the validation split's false accepts at the target.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from crossfuse.media import load_audio

from .actions import SILENCE, UNKNOWN
from .noise import trim_to_speech
from .streaming import (
    ScoredStream,
    StreamSettings,
    calibrate_threshold,
    command_stream,
    count_false_accepts,
    detect_commands,
    false_accept_sources,
    match_detections,
)

Loader = Callable[[Any], torch.Tensor]  # a VoiceClip -> its waveform, unaugmented


def noise_only_audio(noise_paths: Sequence[str], samples: Sequence[Any], load: Loader, sample_rate: int,
                     babble_seconds: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """The background recordings by file name, plus unknown-word babble made of the ``samples``
    labelled ``_unknown_`` (trimmed to their speech)."""
    noise = {Path(path).name: load_audio(path, sample_rate)[0] for path in noise_paths}
    words = [torch.from_numpy(trim_to_speech(load(clip).numpy())) for clip in samples if clip.label == UNKNOWN]
    words = [word for word in words if word.numel()]
    return false_accept_sources(noise, words, sample_rate, babble_seconds, seed)


def split_commands(samples: Sequence[Any], load: Loader, limit: int | None = None,
                   seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """(command, waveform) of the clips of ``samples`` that hold a command: all of them, or a seeded
    sample of ``limit`` (in their original order) when there are more."""
    clips = [clip for clip in samples if clip.label not in (SILENCE, UNKNOWN)]
    if limit is not None and len(clips) > limit:
        kept = set(random.Random(seed).sample(range(len(clips)), limit))
        clips = [clip for index, clip in enumerate(clips) if index in kept]
    return [(clip.label, load(clip)) for clip in clips]


def streaming_metrics(classify: Callable[[torch.Tensor], torch.Tensor], labels: Sequence[str],
                      settings: StreamSettings, sample_rate: int, noise: Sequence[ScoredStream],
                      commands: Sequence[tuple[str, torch.Tensor]], gap_s: float,
                      batch_size: int = 64) -> dict[str, Any]:
    """``false_accepts_per_hour`` on the scored ``noise`` recordings and ``stream_recall`` on
    ``commands`` at ``settings``, with the details under ``stream``."""
    metrics: dict[str, Any] = {"false_accepts_per_hour": None, "stream_recall": None}
    details: dict[str, Any] = {"threshold": settings.threshold, "hop_s": settings.hop_s,
                               "smoothing_s": settings.smoothing_s, "refractory_s": settings.refractory_s}
    if noise:
        counted = count_false_accepts(noise, labels, settings)
        metrics["false_accepts_per_hour"] = counted["per_hour"]
        details["noise"] = counted
    if commands:
        recording, events = command_stream(commands, gap_s, sample_rate)
        found = detect_commands(recording, sample_rate, classify, labels, settings, "the command stream", batch_size)
        matched = match_detections(found, events)
        metrics["stream_recall"] = matched["recall"]
        details["commands"] = matched
    metrics["stream"] = details
    return metrics


def calibrated(noise: Sequence[ScoredStream], labels: Sequence[str], settings: StreamSettings,
               target_per_hour: float) -> tuple[StreamSettings, dict[str, Any]]:
    """``settings`` with the threshold :func:`~crossfuse_smarthome.streaming.calibrate_threshold`
    finds on the scored ``noise`` recordings, and what calibration found."""
    found = calibrate_threshold(noise, labels, settings, target_per_hour)
    return replace(settings, threshold=found["threshold"]), found
