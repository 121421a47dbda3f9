"""Background sounds for keyword spotting: coloured noise, mains hum and speech babble.

Each generator takes a ``numpy.random.Generator`` and returns float32 samples scaled to a given
RMS level, so the same seed gives the same file. They fill the demo's ``_background_noise_``
folder and build the noise-only audio that false accepts per hour are counted on. No torch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

LEVEL = 0.1  # RMS of a generated background clip (about -20 dBFS)


def _scaled(signal: np.ndarray, level: float) -> np.ndarray:
    signal = signal - signal.mean()
    rms = float(np.sqrt(np.mean(signal ** 2)))
    return (signal * (level / rms if rms > 0 else 0.0)).astype(np.float32)


def _shaped(samples: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """White Gaussian noise whose power spectrum is shaped to fall as ``1 / f**exponent``."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.fft.rfftfreq(samples)
    frequencies[0] = frequencies[1]  # keep DC finite; _scaled removes the mean anyway
    return np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=samples)


def pink_noise(samples: int, rng: np.random.Generator, level: float = LEVEL) -> np.ndarray:
    """Pink noise (power falls 3 dB per octave), like rain or a distant fan."""
    return _scaled(_shaped(samples, rng, 1.0), level)


def brown_noise(samples: int, rng: np.random.Generator, level: float = LEVEL) -> np.ndarray:
    """Brown noise (6 dB per octave), like rumble from traffic or an air duct."""
    return _scaled(_shaped(samples, rng, 2.0), level)


def white_noise(samples: int, rng: np.random.Generator, level: float = LEVEL) -> np.ndarray:
    """White Gaussian noise."""
    return _scaled(rng.standard_normal(samples), level)


def hum(samples: int, sample_rate: int, rng: np.random.Generator, mains: float = 50.0,
        level: float = LEVEL) -> np.ndarray:
    """Mains hum: harmonics of ``mains`` Hz whose strengths drift slowly, over a faint pink floor
    (a fridge, a transformer, a ventilation motor)."""
    t = np.arange(samples) / sample_rate
    signal = np.zeros(samples)
    for harmonic in range(1, 9):
        drift = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
        phase = rng.uniform(0, 2 * np.pi)
        signal += drift * np.sin(2 * np.pi * mains * harmonic * t + phase) / harmonic ** rng.uniform(0.5, 1.2)
    signal = _scaled(signal, 1.0) + pink_noise(samples, rng, 0.05)
    return _scaled(signal, level)


def babble(clips: Sequence[np.ndarray], samples: int, rng: np.random.Generator, talkers: int = 6,
           gap_s: tuple[float, float] = (0.05, 0.4), sample_rate: int = 16000, level: float = LEVEL) -> np.ndarray:
    """Speech babble: ``talkers`` tracks, each clips drawn at random and laid end to end with short
    random gaps, summed. One talker is someone chatting without ever saying a command; six or more
    is the noise of a crowded room."""
    if not clips:
        raise ValueError("babble needs at least one speech clip")
    mix = np.zeros(samples)
    for _ in range(talkers):
        track = np.zeros(samples)
        position = int(rng.uniform(0, gap_s[1]) * sample_rate)
        while position < samples:
            clip = np.asarray(clips[rng.integers(len(clips))], dtype=np.float64)
            clip = clip / (np.sqrt(np.mean(clip ** 2)) or 1.0) * rng.uniform(0.5, 1.5)
            end = min(samples, position + len(clip))
            track[position:end] += clip[: end - position]
            position = end + int(rng.uniform(*gap_s) * sample_rate)
        mix += track
    return _scaled(mix, level)


def trim_to_speech(samples: np.ndarray, floor_db: float = -40.0, frame: int = 160, margin: int = 320) -> np.ndarray:
    """The stretch from the first to the last 10 ms frame within ``floor_db`` of the loudest, plus a
    margin; empty when the clip is silent."""
    frames = len(samples) // frame
    energy = (samples[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1)
    if not frames or energy.max() <= 0:
        return samples[:0]
    loud = np.flatnonzero(energy > energy.max() * 10 ** (floor_db / 10))
    start, end = max(0, loud[0] * frame - margin), min(len(samples), (loud[-1] + 1) * frame + margin)
    return samples[start:end]


def write_background_noise(folder: str | Path, sample_rate: int, seconds: float, seed: int,
                           speech: Sequence[np.ndarray]) -> list[Path]:
    """Write ``pink_noise``, ``brown_noise``, ``white_noise``, ``hum`` and ``babble`` WAVs (16-bit)
    of ``seconds`` each into ``folder``; the babble is made of the ``speech`` clips."""
    import soundfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    samples = int(seconds * sample_rate)
    makers = {
        "pink_noise": lambda rng: pink_noise(samples, rng),
        "brown_noise": lambda rng: brown_noise(samples, rng),
        "white_noise": lambda rng: white_noise(samples, rng),
        "hum": lambda rng: hum(samples, sample_rate, rng),
        "babble": lambda rng: babble(speech, samples, rng, talkers=8, sample_rate=sample_rate),
    }
    written = []
    for index, (name, make) in enumerate(makers.items()):
        path = folder / f"{name}.wav"
        # One generator per file, so adding a kind of noise does not change the others.
        soundfile.write(str(path), make(np.random.default_rng([seed, index])), sample_rate, subtype="PCM_16")
        written.append(path)
    return written
