"""Small sound files for the smart-home tests: tones, noise and Speech Commands folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

RATE = 16000


def tone(frequency: float, seconds: float, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone with a Hann envelope (loudest in its middle), float32."""
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.hanning(len(t)) * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray | None = None, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    """Write ``samples`` (``[T]`` or ``[T, channels]``; default a 1 s 440 Hz tone) as a sound file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), tone(440, 1.0, rate) if samples is None else samples, rate, subtype=subtype)
    return path


def speech_commands(root: Path, clips: dict[str, list[str]], validation: list[str] | None = None,
                    testing: list[str] | None = None, noise: dict[str, float] | None = None) -> Path:
    """A Speech Commands folder: ``clips`` maps a word to its file names (each a 1 s tone), the lists
    hold ``word/file`` lines, ``noise`` maps noise-file names to seconds of white noise."""
    for index, (word, names) in enumerate(sorted(clips.items())):
        for name in names:
            write_wav(root / word / name, tone(300 + 50 * index, 1.0))
    for list_name, entries in (("validation_list.txt", validation), ("testing_list.txt", testing)):
        if entries is not None:
            (root / list_name).write_text("".join(f"{entry}\n" for entry in entries))
    rng = np.random.default_rng(0)
    for name, seconds in (noise or {}).items():
        write_wav(root / "_background_noise_" / name, (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32))
    return root


def speakers_folder(root: Path, words: list[str], speakers: list[str], noise: bool = True,
                    validation: list[str] | None = None, testing: list[str] | None = None) -> Path:
    """Every speaker saying every word once (``<speaker>_nohash_0.wav``), with the given lists."""
    clips = {word: [f"{speaker}_nohash_0.wav" for speaker in speakers] for word in words}
    return speech_commands(root, clips, validation, testing, {"white_noise.wav": 5.0} if noise else None)


# Tone "words" for runs that must learn fast: each command is a chord of its own pitch, so a tiny
# model tells them apart within a few epochs; unknown words are chords at other pitches.
PITCHES = {"lights": 400.0, "music": 1100.0, "on": 2600.0, "bed": 700.0, "cat": 1700.0}
WORD_S = 0.5


def spoken(word: str, speaker: int, rate: int = RATE, seconds: float = 1.0, offset: float | None = None) -> np.ndarray:
    """A one-second clip of ``word`` said by ``speaker``: its chord (pitch moved a little per speaker)
    somewhere in the second, over faint noise."""
    rng = np.random.default_rng([speaker, len(word), int(PITCHES[word])])
    pitch = PITCHES[word] * (1 + 0.03 * (speaker % 5 - 2))
    word_samples = tone(pitch, WORD_S, rate, 0.4) + tone(2 * pitch, WORD_S, rate, 0.2)
    clip = (0.003 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    start = int((rng.uniform(0.1, 0.4) if offset is None else offset) * rate)
    clip[start: start + len(word_samples)] += word_samples
    return clip


def tone_commands(root: Path, words: list[str], speakers: int, validation: list[int] | None = None,
                  testing: list[int] | None = None, noise_seconds: float = 4.0) -> Path:
    """A Speech Commands folder of tone words: speaker ``i`` says every word once as ``s{i}_nohash_0.wav``;
    the speakers numbered in ``validation`` / ``testing`` go to those lists (no list file when None)."""
    for word in words:
        for speaker in range(speakers):
            write_wav(root / word / f"s{speaker}_nohash_0.wav", spoken(word, speaker))
    for list_name, chosen in (("validation_list.txt", validation), ("testing_list.txt", testing)):
        if chosen is not None:
            (root / list_name).write_text("".join(f"{w}/s{i}_nohash_0.wav\n" for w in words for i in chosen))
    if noise_seconds:
        rng = np.random.default_rng(1)
        write_wav(root / "_background_noise_" / "hiss.wav",
                  (0.01 * rng.standard_normal(int(noise_seconds * RATE))).astype(np.float32))
    return root


# Three tone commands (two more as unknown words), six speakers: a run of seconds.
TONE_RUN = ["data.words=[lights, music, on]", "data.unknown_fraction=null", "data.silence_fraction=0.3",
            "data.stream.babble_seconds=5", "train.batch_size=16", "train.threads=1"]


def tone_run(folder: Path, backbone: str = "bc-resnet-1", overrides: tuple[str, ...] = (), **options):
    """One epoch of ``smarthome-voice-commands`` on a tone Speech Commands folder under ``folder``
    (written once); returns (that folder, the RunResult). ``options`` go to ``crossfuse.run``."""
    import crossfuse

    root = folder / "sc"
    if not root.is_dir():
        tone_commands(root, ["lights", "music", "on", "bed", "cat"], 6, validation=[4], testing=[5])
    output = options.pop("output", folder / backbone)
    result = crossfuse.run("smarthome-voice-commands", data=str(root), backbone=backbone, epochs=1, output=str(output),
                           overrides=[*TONE_RUN, *overrides], progress=False, **options)
    return root, result
