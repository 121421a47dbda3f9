"""Synthesize the demo set (``demo_data/speech_commands_demo.zip``) with espeak-ng and flite.

    python -m crossfuse_smarthome.make_demo_data [--seed 0] [--out PATH]

Voices: espeak-ng's voice variants, each speaking with one English accent, and flite's voices.
A voice belongs to one split: test voices (16 espeak-ng variants, four of them with the
Caribbean accent no other split hears, and flite's ``slt``) and validation voices (12 variants
and ``rms``) never occur in training. Every voice says every command, "left" and "right" and
four other words drawn at random; espeak-ng voices once, at a random speed and pitch, flite
voices three times at different tempo and pitch (flite has few voices). Each take is resampled
to 16 kHz, trimmed to its speech, set to a random level and a random place in its one-second
clip, and the takes are stored end to end in one Ogg Opus stream (about 20 kbit/s: the expanded
16-bit WAVs take nearly 30 times the space). The same seed on the same engine versions
gives the same archive. The engines are installed with apt-get when missing; nothing else
needs them (the run expands the archive, :mod:`crossfuse_smarthome.demo`).
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .demo import (
    ALWAYS_SAID,
    CLIP_SAMPLES,
    DEMO_ARCHIVE,
    DEMO_COMMANDS,
    MANIFEST_FIELDS,
    OTHER_WORDS,
    SAMPLE_RATE,
    VOICE_FIELDS,
)
from .noise import trim_to_speech

# espeak-ng 1.51 voice variants (espeak-ng-data/voices/!v), listed so the set does not change
# with whatever the installed package happens to hold.
ESPEAK_VARIANTS = [
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "RicishayMax", "RicishayMax2",
    "RicishayMax3", "Storm", "Tweaky", "UniRobot", "adam", "anika", "anikaRobot", "announcer", "antonio", "aunty",
    "belinda", "benjamin", "boris", "caleb", "croak", "david", "ed", "edward", "edward2", "f1", "f2", "f3", "f4",
    "f5", "fast", "grandma", "grandpa", "gustave", "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "klatt",
    "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert",
    "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8",
    "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor", "whisper", "whisperf", "zac",
]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-us-nyc"]
HELD_OUT_ACCENT = "en-029"  # Caribbean English: only test voices speak it
TEST_VARIANTS, VALIDATION_VARIANTS, HELD_OUT_ACCENT_VOICES = 16, 12, 4
# kal (8 kHz) and kal16 are one speaker, so both train.
FLITE_VOICES = {"kal": "train", "kal16": "train", "awb": "train", "rms": "validation", "slt": "test"}
FLITE_TAKES = [(0.85, 0.9), (1.0, 1.0), (1.15, 1.12)]  # (duration stretch, pitch factor) per take
FLITE_F0 = {"kal": 105.0, "kal16": 105.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # Hz, near each voice's own
OTHER_WORDS_PER_TAKE = 4
SPEED_WPM = (130, 211)  # espeak-ng -s range; 175 is its default
PITCH = (20, 81)  # espeak-ng -p range; 50 is its default
PEAK = (0.15, 0.8)  # clip peak level range
GAP = 640  # zero samples between takes in the stream (40 ms), so the codec never blurs one into the next
OPUS_LEVEL = 0.95  # libsndfile compression level: about 20 kbit/s; 1.0 drops to narrow band and smears the mel bins
MAX_SPEECH = CLIP_SAMPLES - 160


@dataclass(frozen=True)
class Voice:
    """A speaker: an engine's voice (and accent) that belongs to one split."""

    name: str
    engine: str
    accent: str
    variant: str
    split: str


@dataclass(frozen=True)
class Take:
    """One utterance to synthesize: who says which word, how fast and how high."""

    voice: Voice
    word: str
    number: int  # the n of <voice>_nohash_<n>.wav within the word's folder
    speed: float  # espeak-ng words per minute, or flite duration stretch
    pitch: float  # espeak-ng 0-99, or flite mean F0 in Hz

    @property
    def path(self) -> str:
        return f"{self.word}/{self.voice.name}_nohash_{self.number}.wav"


def voices(seed: int) -> list[Voice]:
    """Every voice with its split: espeak-ng variants shuffled into test, validation and train."""
    rng = np.random.default_rng([seed, 1])
    variants = [ESPEAK_VARIANTS[i] for i in rng.permutation(len(ESPEAK_VARIANTS))]
    chosen = []
    for index, variant in enumerate(variants):
        split = "test" if index < TEST_VARIANTS else "validation" if index < TEST_VARIANTS + VALIDATION_VARIANTS \
            else "train"
        accent = HELD_OUT_ACCENT if index < HELD_OUT_ACCENT_VOICES else ACCENTS[index % len(ACCENTS)]
        chosen.append(Voice(_slug(f"espeak-{accent}-{variant}"), "espeak-ng", accent, variant, split))
    for name, split in FLITE_VOICES.items():
        chosen.append(Voice(f"flite-{name}", "flite", "en-us" if name != "awb" else "en-gb-scotland", name, split))
    return chosen


def _slug(text: str) -> str:
    # Speech Commands splits a file name at "_nohash_": a voice name must hold no underscore.
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def takes(seed: int) -> list[Take]:
    """What each voice says, with its speed and pitch, in a fixed order."""
    rng = np.random.default_rng([seed, 2])
    planned = []
    for voice in voices(seed):
        settings = FLITE_TAKES if voice.engine == "flite" else [None]
        for repeat, setting in enumerate(settings):
            others = [OTHER_WORDS[i] for i in rng.choice(len(OTHER_WORDS), OTHER_WORDS_PER_TAKE, replace=False)]
            for word in DEMO_COMMANDS + ALWAYS_SAID + others:
                if setting is None:
                    speed, pitch = float(rng.integers(*SPEED_WPM)), float(rng.integers(*PITCH))
                else:
                    speed, pitch = setting[0], round(FLITE_F0[voice.variant] * setting[1], 1)
                planned.append(Take(voice, word, repeat, speed, pitch))
    return planned


def synthesize(take: Take, workdir: Path) -> np.ndarray:
    """The take as float32 samples at 16 kHz, trimmed to its speech (at most just under a second)."""
    from crossfuse.media import load_audio

    text = take.word.replace("_", " ")
    out = workdir / "take.wav"
    if take.voice.engine == "espeak-ng":
        command = ["espeak-ng", "-v", f"{take.voice.accent}+{take.voice.variant}", "-s", str(int(take.speed)),
                   "-p", str(int(take.pitch)), "-w", str(out), text]
    else:
        command = ["flite", "-voice", take.voice.variant, "--setf", f"duration_stretch={take.speed}",
                   "--setf", f"int_f0_target_mean={take.pitch}", "-t", text, "-o", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    waveform, _ = load_audio(out, SAMPLE_RATE)
    return trim_to_speech(waveform.numpy())[:MAX_SPEECH]


def ensure_engines() -> None:
    """Install espeak-ng and flite with apt-get (Debian, Ubuntu) when either is missing."""
    missing = [tool for tool in ("espeak-ng", "flite") if shutil.which(tool) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"needs {' and '.join(missing)}: install them with your system's package manager")
    sudo = [] if _is_root() else ["sudo"]
    print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "update"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", *missing], check=True)


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def build(seed: int, out: Path) -> dict[str, int]:
    """Synthesize every take and write the archive to ``out``; returns clip counts per split."""
    rng = np.random.default_rng([seed, 3])
    planned = takes(seed)
    pieces, rows, position = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for take in planned:
            speech = synthesize(take, Path(tmp))
            speech = speech / np.abs(speech).max() * rng.uniform(*PEAK)
            offset = int(rng.integers(0, CLIP_SAMPLES - len(speech) + 1))
            rows.append({"path": take.path, "word": take.word, "voice": take.voice.name, "split": take.voice.split,
                         "start": position, "length": len(speech), "offset": offset, "speed": take.speed,
                         "pitch": take.pitch})
            pieces += [speech.astype(np.float32), np.zeros(GAP, np.float32)]
            position += len(speech) + GAP
    _write_archive(out, np.concatenate(pieces), rows, voices(seed))
    counts = {split: sum(row["split"] == split for row in rows) for split in ("train", "validation", "test")}
    return counts | {"cut short": sum(row["length"] == MAX_SPEECH for row in rows)}


def _write_archive(out: Path, stream: np.ndarray, rows: list[dict], speakers: list[Voice]) -> None:
    import soundfile

    encoded = io.BytesIO()
    soundfile.write(encoded, stream, SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL)
    opus = fixed_serial(encoded.getvalue())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        # Fixed dates and order: the same seed writes the same bytes.
        _add(archive, "manifest.csv", _csv(MANIFEST_FIELDS, rows), zipfile.ZIP_DEFLATED)
        _add(archive, "voices.csv", _csv(VOICE_FIELDS, [_voice_row(v) for v in speakers]), zipfile.ZIP_DEFLATED)
        _add(archive, "clips.opus", opus, zipfile.ZIP_STORED)  # Opus does not deflate
    tmp.replace(out)


def fixed_serial(ogg: bytes, serial: int = 1) -> bytes:
    """The Ogg stream with every page's serial number set to ``serial`` and its checksum redone.

    libsndfile picks a random serial number per stream: without this the same audio would give
    different bytes each time the archive is made.
    """
    data, position = bytearray(ogg), 0
    while position < len(data):
        if data[position: position + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {position}")
        segments = data[position + 26]
        length = 27 + segments + sum(data[position + 27: position + 27 + segments])
        data[position + 14: position + 18] = serial.to_bytes(4, "little")
        data[position + 22: position + 26] = bytes(4)
        data[position + 22: position + 26] = _ogg_crc(data[position: position + length]).to_bytes(4, "little")
        position += length
    return bytes(data)


def _ogg_crc(page: bytes) -> int:
    # Ogg's CRC-32: polynomial 0x04c11db7, no reflection, initial value and final xor 0 (unlike zlib's).
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def _crc_entry(index: int) -> int:
    value = index << 24
    for _ in range(8):
        value = ((value << 1) ^ 0x04C11DB7 if value & 0x80000000 else value << 1) & 0xFFFFFFFF
    return value


_CRC_TABLE = [_crc_entry(i) for i in range(256)]


def _voice_row(voice: Voice) -> dict[str, str]:
    return {"voice": voice.name, "engine": voice.engine, "accent": voice.accent, "variant": voice.variant,
            "split": voice.split}


def _csv(fields: list[str], rows: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def _add(archive: zipfile.ZipFile, name: str, data: bytes, compression: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = compression
    archive.writestr(info, data)


def main(argv: list[str] | None = None) -> None:
    """Command line: synthesize the demo archive."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEMO_ARCHIVE)
    args = parser.parse_args(argv)
    ensure_engines()
    began = time.time()
    counts = build(args.seed, args.out)
    size = args.out.stat().st_size
    total = sum(counts[split] for split in ("train", "validation", "test"))
    print(f"{args.out}: {total} clips ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"{size / 1e6:.2f} MB, {time.time() - began:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
