"""What a user sets under ``data:``, ``head:`` and on ``crossfuse predict`` for the voice-command task.

crossfuse reads configs as YAML 1.2: ``yes``, ``no``, ``on`` and ``off`` are words, not booleans,
so ``words: [yes, no, on, off]`` needs no quotes (a YAML 1.1 reader would need them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from crossfuse.errors import ConfigError
from crossfuse.task import ClassifierHead, DataSource

from .actions import DEFAULT_ACTIONS

# The ten command words of the Speech Commands v2-12 benchmark (plus _unknown_ and _silence_).
V2_12_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


@dataclass
class AugmentConfig:
    """Training-time augmentation; each part can be switched off on its own."""

    time_shift: bool = True
    shift_ms: float = 100.0  # the clip moves by up to this much either way, zero-filled
    gain: bool = True
    gain_db: list[float] = field(default_factory=lambda: [-10.0, 6.0])  # random level change range
    noise: bool = True  # mix a random crop of a _background_noise_ clip into the speech
    noise_probability: float = 0.5  # share of training clips that get noise
    snr_db: list[float] = field(default_factory=lambda: [5.0, 25.0])  # speech-to-noise ratio range, dB
    spec_augment: bool = True
    freq_masks: int = 1  # SpecAugment: how many frequency bands to blank ...
    freq_mask_width: int = 7  # ... each up to this many mel bins wide
    time_masks: int = 1  # ... and how many stretches of time
    time_mask_width: int = 20  # ... each up to this many frames (10 ms each)


@dataclass
class StreamConfig:
    """The streaming detector (``predict --stream``, false accepts per hour): a window slides over a
    long recording and fires on commands."""

    window_s: Optional[float] = None  # None: the clip length the model was trained on
    hop_s: float = 0.1  # the window moves this far each step
    smoothing_s: float = 0.3  # posteriors are averaged over this span (centred) before the threshold
    threshold: float = 0.7  # smoothed probability a command must reach to fire (unless calibrated)
    refractory_s: float = 1.0  # after a detection, no other fires for this long
    # Calibration after training: the lowest threshold that keeps false accepts per hour on the
    # validation split's noise-only audio at or below the target (null: keep `threshold`).
    target_false_accepts_per_hour: Optional[float] = 5.0
    babble_seconds: float = 120.0  # noise-only audio: this much unknown-word speech, 1 and 4 talkers each
    command_gap_s: float = 1.0  # the command stream (recall): quiet between the split's commands ...
    recall_commands: Optional[int] = 400  # ... at most this many of them (a seeded sample); null: all


@dataclass
class VoiceDataConfig(DataSource):
    """Where the clips come from, which words are commands, and how audio is prepared."""

    format: str = "auto"  # speech-commands (auto recognises the layout)
    train: Optional[str] = None  # a Speech Commands folder; None: the shipped synthetic demo
    validation: Optional[str] = None  # None: the folder's validation_list.txt, else carved out by speaker
    test: Optional[str] = None  # None: the folder's testing_list.txt
    validation_fraction: float = 0.1  # a folder without lists: about this share of speakers validates
    test_fraction: float = 0.0  # ... and this share tests
    # None: the v2-12 words on a Speech Commands folder, the demo's smart-home commands on the demo.
    words: Optional[list[str]] = None
    use_lists: bool = True  # false: every clip of the folder is one split (the lists are ignored)
    noise: Optional[str] = None  # background recordings (silence, mixing, false accepts); None: _background_noise_
    clip_seconds: float = 1.0
    sample_rate: Optional[int] = None  # None: the backbone's rate (16000 for BC-ResNet); clips are resampled
    silence_fraction: float = 0.1  # _silence_ examples per split, as a share of its command clips
    unknown_fraction: Optional[float] = 0.1  # _unknown_ clips kept per split, same base; None: all
    feature_norm: Literal["none", "mean"] = "mean"  # subtract each clip's mean log-mel per band (none: off)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    actions: dict[str, dict[str, str]] = field(default_factory=lambda: {k: dict(v) for k, v in
                                                                        DEFAULT_ACTIONS.items()})


@dataclass
class VoiceHeadConfig(ClassifierHead):
    """``head`` section: the classifier on the backbone's clip vector."""

    hidden: int = 128  # mlp only
    label_smoothing: float = 0.1
    temperature_scaling: bool = True  # fit a temperature on validation: clip predictions print calibrated probabilities


@dataclass
class VoicePredictOptions:
    """Options of ``crossfuse predict`` for a voice-command run."""

    stream: bool = field(default=False, metadata={
        "help": "treat each input as a long recording: print every command heard with its start time"})
    threshold: Optional[float] = field(default=None, metadata={
        "help": "with --stream: smoothed probability a command needs to fire (default: the run's calibrated one)"})
    batch_size: int = field(default=64, metadata={"help": "clips or stream windows per forward pass"})


def check_data_config(data: VoiceDataConfig) -> None:
    """Values that are well-typed but unusable, named by their key (raised before anything runs)."""
    augment, stream = data.augment, data.stream
    for key, pair in (("augment.gain_db", augment.gain_db), ("augment.snr_db", augment.snr_db)):
        if len(pair) != 2 or pair[0] > pair[1]:
            raise ConfigError(f"data.{key} must be [low, high], got {pair}")
    checks = [
        ("clip_seconds", data.clip_seconds > 0, "positive"),
        ("sample_rate", data.sample_rate is None or data.sample_rate >= 4000, "at least 4000 (Hz)"),
        ("silence_fraction", data.silence_fraction >= 0, "0 or more"),
        ("unknown_fraction", data.unknown_fraction is None or data.unknown_fraction >= 0, "0 or more, or null"),
        ("augment.noise_probability", 0 <= augment.noise_probability <= 1, "in [0, 1]"),
        ("augment.shift_ms", augment.shift_ms >= 0, "0 or more"),
        ("stream.window_s", stream.window_s is None or stream.window_s > 0, "positive, or null"),
        ("stream.hop_s", stream.hop_s > 0, "positive"),
        ("stream.smoothing_s", stream.smoothing_s >= 0, "0 or more"),
        ("stream.threshold", 0 < stream.threshold <= 1, "in (0, 1]"),
        ("stream.refractory_s", stream.refractory_s >= 0, "0 or more"),
        ("stream.target_false_accepts_per_hour", stream.target_false_accepts_per_hour is None
         or stream.target_false_accepts_per_hour >= 0, "0 or more, or null"),
        ("stream.babble_seconds", stream.babble_seconds >= 0, "0 or more"),
        ("stream.command_gap_s", stream.command_gap_s >= 0, "0 or more"),
        ("stream.recall_commands", stream.recall_commands is None or stream.recall_commands >= 1, "1 or more, or null"),
    ]
    for key, fine, expected in checks:
        if not fine:
            raise ConfigError(f"data.{key} must be {expected}, got {_value(data, key)!r}")


def _value(section: object, dotted: str) -> object:
    for part in dotted.split("."):
        section = getattr(section, part)
    return section
