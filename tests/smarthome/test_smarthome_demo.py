"""The shipped demo: it expands into a valid Speech Commands folder, split by voice."""

from __future__ import annotations

import soundfile

from crossfuse.datasets import Splits
from crossfuse_smarthome.config import VoiceDataConfig
from crossfuse_smarthome.demo import ALWAYS_SAID, DEMO_ARCHIVE, DEMO_COMMANDS, voice_table
from crossfuse_smarthome.make_demo_data import HELD_OUT_ACCENT, takes, voices
from crossfuse_smarthome.speech_commands import is_speech_commands, noise_files, read_speech_commands


def test_the_archive_is_small():
    assert DEMO_ARCHIVE.stat().st_size < 4_000_000


def test_it_expands_into_one_second_16_khz_clips_in_speech_commands_layout(demo_folder):
    assert is_speech_commands(demo_folder)
    for word in DEMO_COMMANDS + ALWAYS_SAID:
        files = sorted((demo_folder / word).glob("*.wav"))
        assert len(files) > 100
        info = soundfile.info(str(files[0]))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
    assert {p.stem for p in noise_files(demo_folder / "_background_noise_")} >= {"pink_noise", "brown_noise", "hum", "babble"}


def test_no_validation_or_test_voice_speaks_in_training(demo_folder):
    splits = read_speech_commands(demo_folder, VoiceDataConfig(words=DEMO_COMMANDS))
    assert isinstance(splits, Splits)
    heard = {name: {c.speaker for c in getattr(splits, name) if c.speaker} for name in ("train", "validation", "test")}
    assert not heard["train"] & heard["test"] and not heard["train"] & heard["validation"]
    assert not heard["validation"] & heard["test"]
    table = voice_table(demo_folder)
    for name, split in (("train", "train"), ("validation", "validation"), ("test", "test")):
        assert {table[voice]["split"] for voice in heard[name]} == {split}
    for name in ("train", "validation", "test"):
        labels = {c.label for c in getattr(splits, name)}
        assert labels == {*DEMO_COMMANDS, "_unknown_", "_silence_"}


def test_the_held_out_accent_and_engines_are_only_heard_in_test(demo_folder):
    table = voice_table(demo_folder)
    assert {row["split"] for row in table.values() if row["accent"] == HELD_OUT_ACCENT} == {"test"}
    test_engines = {row["engine"] for row in table.values() if row["split"] == "test"}
    assert test_engines == {"espeak-ng", "flite"}


def test_the_plan_is_fixed_by_the_seed():
    assert takes(0)[:50] == takes(0)[:50]
    assert [v.name for v in voices(0)] != [v.name for v in voices(1)]
    variants = {split: {v.variant for v in voices(0) if v.split == split} for split in ("train", "validation", "test")}
    assert not variants["test"] & variants["train"] and not variants["validation"] & variants["train"]
