"""Spotting commands in a long recording, and counting false accepts per hour on noise.

The detector slides a window (the model's clip length) over the waveform every ``hop_s``,
classifies each window with a callable it is given (a batch ``[B, window]`` -> class
probabilities ``[B, C]``), averages each class's probability over ``smoothing_s`` centred on the
window, and finds the runs of windows where one command's smoothed probability stays at or above
``threshold``. Each run is a candidate at its peak; candidates closer than ``refractory_s`` keep
only the strongest (one spoken command lights up several overlapping windows, and a two-word
command's first word on its own should not fire as well). ``_unknown_`` and ``_silence_`` never
fire. A detection gives the command, the start and end of its best window and its score.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from crossfuse.errors import DataError

from .actions import SILENCE, UNKNOWN

Classifier = Callable[[torch.Tensor], Any]


@dataclass(frozen=True)
class Detection:
    """A command heard in a stream: its best window ``[start, end)`` in seconds and smoothed score."""

    command: str
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class StreamSettings:
    """Detector settings in seconds and probability (see :class:`~crossfuse_smarthome.config.StreamConfig`)."""

    window_s: float = 1.0
    hop_s: float = 0.1
    smoothing_s: float = 0.3
    threshold: float = 0.7
    refractory_s: float = 1.0

    @classmethod
    def from_config(cls, config: Any, clip_seconds: float) -> StreamSettings:
        """From a ``data.stream`` section; its ``window_s`` of None means ``clip_seconds``."""
        return cls(config.window_s or clip_seconds, config.hop_s, config.smoothing_s, config.threshold,
                   config.refractory_s)


def window_starts(total: int, window: int, hop: int) -> list[int]:
    """Window start samples every ``hop``, plus one flush with the end so the tail is heard too."""
    starts = list(range(0, total - window + 1, hop))
    if starts and starts[-1] + window < total:
        starts.append(total - window)
    return starts


def window_probabilities(waveform: torch.Tensor, window: int, hop: int, classify: Classifier,
                         batch_size: int = 64) -> tuple[list[int], np.ndarray]:
    """Start sample and class probabilities ``[windows, C]`` of every window (classified in batches)."""
    starts = window_starts(waveform.numel(), window, hop)
    rows = []
    with torch.no_grad():
        for first in range(0, len(starts), batch_size):
            batch = torch.stack([waveform[s: s + window] for s in starts[first: first + batch_size]])
            output = classify(batch)
            rows.append(output.detach().cpu().numpy() if isinstance(output, torch.Tensor) else np.asarray(output))
    return starts, np.concatenate(rows).astype(np.float64)


def smooth(probabilities: np.ndarray, span: int) -> np.ndarray:
    """Centred moving average over ``span`` windows (made odd); at the ends, over the windows there are."""
    half = max(0, span) // 2
    if half == 0:
        return probabilities
    padded = np.cumsum(np.pad(probabilities, ((1, 0), (0, 0))), axis=0)
    index = np.arange(len(probabilities))
    low, high = np.maximum(0, index - half), np.minimum(len(probabilities), index + half + 1)
    return (padded[high] - padded[low]) / (high - low)[:, None]


def pick_detections(smoothed: np.ndarray, times: Sequence[float], labels: Sequence[str], settings: StreamSettings,
                    ) -> list[Detection]:
    """Detections from smoothed probabilities ``[windows, C]`` and each window's start time."""
    commands = [i for i, label in enumerate(labels) if label not in (SILENCE, UNKNOWN)]
    if not commands or not len(smoothed):
        return []
    best = np.asarray(commands)[smoothed[:, commands].argmax(axis=1)]
    score = smoothed[np.arange(len(smoothed)), best]
    kept = _suppress(_run_peaks(best, score, settings.threshold), score, times, settings.refractory_s)
    return [Detection(labels[best[p]], round(float(times[p]), 3), round(float(times[p]) + settings.window_s, 3),
                      round(float(score[p]), 4)) for p in kept]


def _run_peaks(best: np.ndarray, score: np.ndarray, threshold: float) -> list[int]:
    """The best window of each run of consecutive windows where one command stays at or above ``threshold``."""
    def run_key(j: int) -> int:
        return int(best[j]) if score[j] >= threshold else -1

    peaks = []
    for command, run in groupby(range(len(score)), key=run_key):
        if command >= 0:
            peaks.append(max(run, key=lambda j: score[j]))
    return peaks


def _suppress(peaks: list[int], score: np.ndarray, times: Sequence[float], refractory: float) -> list[int]:
    """``peaks`` in time order, without any that lies within ``refractory`` seconds of a stronger one."""
    kept: list[int] = []
    for peak in sorted(peaks, key=lambda p: -score[p]):
        if all(abs(times[peak] - times[other]) >= refractory for other in kept):
            kept.append(peak)
    return sorted(kept)


def stream_scores(waveform: torch.Tensor, sample_rate: int, classify: Classifier,
                  settings: StreamSettings = StreamSettings(), where: str | Path = "the stream",
                  batch_size: int = 64) -> tuple[list[float], np.ndarray]:
    """Each window's start time (seconds) and smoothed class probabilities ``[windows, C]``: what
    :func:`pick_detections` thresholds (computed once, then tried at any threshold).

    ``where`` names the recording in the error raised when it is shorter than one window.
    """
    window, hop = _samples(settings.window_s, sample_rate), max(1, _samples(settings.hop_s, sample_rate))
    if waveform.numel() < window:
        raise DataError(f"{where}: {waveform.numel() / sample_rate:.2f} s of audio is shorter than one "
                        f"{settings.window_s:g} s detection window; give a longer recording")
    starts, probabilities = window_probabilities(waveform, window, hop, classify, batch_size)
    span = int(round(settings.smoothing_s / settings.hop_s)) if settings.hop_s > 0 else 1
    return [s / sample_rate for s in starts], smooth(probabilities, span)


def detect_commands(waveform: torch.Tensor, sample_rate: int, classify: Classifier, labels: Sequence[str],
                    settings: StreamSettings = StreamSettings(), where: str | Path = "the stream",
                    batch_size: int = 64) -> list[Detection]:
    """The commands heard in ``waveform`` (mono ``[T]`` at ``sample_rate``), in time order.

    ``where`` names the recording in the error raised when it is shorter than one window.
    """
    times, smoothed = stream_scores(waveform, sample_rate, classify, settings, where, batch_size)
    return pick_detections(smoothed, times, labels, settings)


def _samples(seconds: float, sample_rate: int) -> int:
    return int(round(seconds * sample_rate))


@dataclass(frozen=True)
class ScoredStream:
    """A recording's smoothed window probabilities, ready to be thresholded (see :func:`stream_scores`)."""

    name: str
    seconds: float
    times: list[float]
    smoothed: np.ndarray


def score_streams(sources: Mapping[str, torch.Tensor], sample_rate: int, classify: Classifier,
                  settings: StreamSettings = StreamSettings(), batch_size: int = 64) -> list[ScoredStream]:
    """:func:`stream_scores` of every recording in ``sources`` (name -> waveform)."""
    scored = []
    for name, waveform in sources.items():
        times, smoothed = stream_scores(waveform, sample_rate, classify, settings, name, batch_size)
        scored.append(ScoredStream(name, round(waveform.numel() / sample_rate, 2), times, smoothed))
    return scored


def count_false_accepts(scored: Sequence[ScoredStream], labels: Sequence[str],
                        settings: StreamSettings = StreamSettings()) -> dict[str, Any]:
    """What the detector fires on recordings that hold no command: ``false_accepts``, ``hours``
    listened to, ``per_hour``, and per recording its seconds, false accepts and the commands fired."""
    per_source, total, seconds = {}, 0, 0.0
    for stream in scored:
        fired = pick_detections(stream.smoothed, stream.times, labels, settings)
        commands: dict[str, int] = {}
        for detection in fired:
            commands[detection.command] = commands.get(detection.command, 0) + 1
        per_source[stream.name] = {"seconds": stream.seconds, "false_accepts": len(fired), "commands": commands}
        total, seconds = total + len(fired), seconds + stream.seconds
    hours = seconds / 3600
    return {"false_accepts": total, "hours": round(hours, 4), "per_hour": total / hours if hours else None,
            "sources": per_source}


def false_accepts_per_hour(sources: Mapping[str, torch.Tensor], sample_rate: int, classify: Classifier,
                           labels: Sequence[str], settings: StreamSettings = StreamSettings(),
                           batch_size: int = 64) -> dict[str, Any]:
    """Run the detector over audio that holds no command (``sources``: name -> waveform) and count
    what it fires (:func:`count_false_accepts`)."""
    return count_false_accepts(score_streams(sources, sample_rate, classify, settings, batch_size), labels, settings)


def calibrate_threshold(scored: Sequence[ScoredStream], labels: Sequence[str], settings: StreamSettings,
                        target_per_hour: float, grid: Sequence[float] | None = None) -> dict[str, Any]:
    """The lowest threshold of ``grid`` (default 0.30, 0.31 ... 0.99) at which the detector fires at
    most ``target_per_hour`` times an hour on the noise-only ``scored`` recordings: the most
    sensitive setting that keeps false accepts at the target. When even the highest threshold
    fires more often, that one is returned with ``reached: False``."""
    from dataclasses import replace

    grid = sorted(grid if grid is not None else [round(0.30 + 0.01 * i, 2) for i in range(70)])
    hours = sum(stream.seconds for stream in scored) / 3600
    if not grid or hours <= 0:
        raise ValueError("calibrating the threshold needs noise-only audio and at least one candidate threshold")
    for threshold in grid:
        counted = count_false_accepts(scored, labels, replace(settings, threshold=threshold))
        if counted["per_hour"] <= target_per_hour:
            break
    return {"threshold": threshold, "target_per_hour": target_per_hour, "per_hour": counted["per_hour"],
            "false_accepts": counted["false_accepts"], "hours": round(hours, 4),
            "reached": counted["per_hour"] <= target_per_hour}


def command_stream(clips: Sequence[tuple[str, torch.Tensor]], gap_s: float,
                   sample_rate: int) -> tuple[torch.Tensor, list[tuple[str, float, float]]]:
    """``clips`` (command, waveform) laid end to end with ``gap_s`` of silence before each and after
    the last; returns the recording and each command's (command, start, end) in seconds."""
    gap = torch.zeros(_samples(gap_s, sample_rate))
    pieces, events, position = [gap], [], gap.numel()
    for command, waveform in clips:
        events.append((command, position / sample_rate, (position + waveform.numel()) / sample_rate))
        pieces += [waveform, gap]
        position += waveform.numel() + gap.numel()
    return torch.cat(pieces), events


def match_detections(detections: Sequence[Detection], events: Sequence[tuple[str, float, float]]) -> dict[str, Any]:
    """How many ``events`` (command, start, end) a detection of the same command overlaps (each
    detection and event counted once, in time order): ``recall`` and the ``wrong`` detections (another
    command, or nothing there)."""
    used: set[int] = set()
    hits = 0
    for command, start, end in events:
        for index, detection in enumerate(detections):
            if index not in used and detection.command == command and detection.start < end and start < detection.end:
                used.add(index)
                hits += 1
                break
    return {"commands": len(events), "detected": hits, "recall": hits / len(events) if events else None,
            "wrong": len(detections) - len(used)}


def false_accept_sources(noise: Mapping[str, torch.Tensor], unknown_clips: Sequence[torch.Tensor],
                         sample_rate: int, babble_seconds: float = 120.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Noise-only audio to count false accepts on: each background recording as it is, plus
    ``babble_seconds`` of one voice after another saying unknown words (speech that never holds a
    command: the hardest case) and as much four-talker babble."""
    from .noise import babble

    sources = dict(noise)
    if unknown_clips:
        clips = [clip.numpy() for clip in unknown_clips]
        samples = int(babble_seconds * sample_rate)
        for talkers in (1, 4):
            rng = np.random.default_rng([seed, talkers])
            mix = babble(clips, samples, rng, talkers=talkers, sample_rate=sample_rate)
            sources[f"unknown-words-{talkers}-talker{'s' if talkers > 1 else ''}"] = torch.from_numpy(mix)
    return sources
