"""The shipped demo set: synthetic spoken commands in the Google Speech Commands layout.

``demo_data/speech_commands_demo.zip`` (made by :mod:`crossfuse_smarthome.make_demo_data`) holds
every clip, trimmed to its speech, end to end in one Ogg Opus stream (``clips.opus``), with
``manifest.csv`` saying where each clip starts, how long it is, where it sits in its one-second
clip, its word, voice and split, and ``voices.csv`` describing each voice. On first use
:func:`demo_root` expands it into the cache as a Speech Commands folder::

    <word>/<voice>_nohash_<n>.wav      one-second 16 kHz 16-bit clips
    validation_list.txt, testing_list.txt
    _background_noise_/                pink, brown, white noise, mains hum and speech babble
    voices.csv                         voice, engine, accent, variant, split

The split is by voice: no validation or test voice says anything in training. The babble is
made only of training voices saying words that are never commands.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

DEMO_ARCHIVE = Path(__file__).parent / "demo_data" / "speech_commands_demo.zip"
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second
NOISE_SECONDS = 60.0
NOISE_SEED = 0

# What the demo's voices say. The commands are the default word list on the demo; "left" and
# "right" are said by every voice too, so the v2-12 word list also works on it.
DEMO_COMMANDS = ["on", "off", "up", "down", "stop", "go", "yes", "no", "lights", "music", "heat", "cool",
                 "lights_on", "lights_off", "music_on", "music_off"]
ALWAYS_SAID = ["left", "right"]
OTHER_WORDS = ["bed", "bird", "cat", "dog", "happy", "house", "tree", "wow", "zero", "one", "two", "three",
               "four", "five", "marvin", "sheila", "kitchen", "window", "door", "coffee", "follow", "learn"]
MANIFEST_FIELDS = ["path", "word", "voice", "split", "start", "length", "offset", "speed", "pitch"]
VOICE_FIELDS = ["voice", "engine", "accent", "variant", "split"]


def demo_root() -> Path:
    """The expanded demo folder in the cache (written once, atomically, keyed on the archive's bytes)."""
    from crossfuse.runs import cached_folder

    digest = hashlib.sha256(DEMO_ARCHIVE.read_bytes()).hexdigest()[:12]
    return cached_folder("smarthome-demo", f"v1-{digest}", fill=lambda folder: expand_demo(DEMO_ARCHIVE, folder))


def _read_table(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    """Rows of the CSV member ``name`` of an open demo archive."""
    return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8"))))


def expand_demo(archive_path: str | Path, folder: str | Path) -> Path:
    """Write the Speech Commands folder the archive describes into ``folder``; returns ``folder``."""
    import soundfile

    folder = Path(folder)
    with zipfile.ZipFile(archive_path) as archive:
        rows = _read_table(archive, "manifest.csv")
        voices = archive.read("voices.csv")
        stream, rate = soundfile.read(io.BytesIO(archive.read("clips.opus")), dtype="float32")
    if rate != SAMPLE_RATE:
        raise ValueError(f"{archive_path}: clips.opus is at {rate} Hz, expected {SAMPLE_RATE}")
    babble_speech = []
    for row in rows:
        start, length, offset = int(row["start"]), int(row["length"]), int(row["offset"])
        speech = stream[start: start + length]
        clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
        clip[offset: offset + length] = speech
        write_pcm16(folder / row["path"], clip)
        if row["split"] == "train" and row["word"] in OTHER_WORDS:
            babble_speech.append(speech)
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        listed = sorted(row["path"] for row in rows if row["split"] == split)
        (folder / name).write_text("".join(f"{path}\n" for path in listed))
    (folder / "voices.csv").write_bytes(voices)
    from .noise import write_background_noise

    write_background_noise(folder / "_background_noise_", SAMPLE_RATE, NOISE_SECONDS, NOISE_SEED, babble_speech)
    return folder


def write_pcm16(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """A mono 16-bit WAV, written with the standard library (soundfile syncs every file it closes to
    disk, which makes thousands of small files take seconds)."""
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def voice_table(root: str | Path) -> dict[str, dict[str, str]]:
    """``voices.csv`` of an expanded demo folder: voice name -> its engine, accent, variant and split."""
    with open(Path(root) / "voices.csv", newline="", encoding="utf-8") as handle:
        return {row["voice"]: row for row in csv.DictReader(handle)}
