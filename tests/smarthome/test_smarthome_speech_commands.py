"""The Speech Commands reader: lists, unknown words, silence from the noise folder, and bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crossfuse.datasets import Splits
from crossfuse.errors import ConfigError, DataError
from crossfuse_smarthome.audio import load_clip
from crossfuse_smarthome.speech_commands import (
    VoiceClip,
    class_names,
    command_words,
    hold_out_speakers,
    is_speech_commands,
    read_every_clip,
    read_speech_commands,
    speaker_of,
)

from voice_files import speakers_folder, tone, write_wav

SPEAKERS = [f"s{i:02d}" for i in range(10)]


def options(**values):
    return SimpleNamespace(**{"words": ["yes", "no"], "silence_fraction": 0.1, "unknown_fraction": None, **values})


def names(clips):
    return sorted(f"{c.word}/{c.path.rsplit('/', 1)[-1]}" for c in clips if c.label != "_silence_")


@pytest.fixture
def folder(tmp_path):
    """yes, no and two unknown words said by ten speakers; s00 validates, s01 tests."""
    words = ["yes", "no", "bed", "cat"]
    validation = [f"{w}/s00_nohash_0.wav" for w in words]
    testing = [f"{w}/s01_nohash_0.wav" for w in words]
    return speakers_folder(tmp_path / "sc", words, SPEAKERS, validation=validation, testing=testing)


def test_the_lists_define_validation_and_test_and_every_other_clip_trains(folder):
    splits = read_speech_commands(folder, options())
    assert isinstance(splits, Splits)
    assert names(splits.validation) == sorted(f"{w}/s00_nohash_0.wav" for w in ["yes", "no", "bed", "cat"])
    assert names(splits.test) == sorted(f"{w}/s01_nohash_0.wav" for w in ["yes", "no", "bed", "cat"])
    assert {c.speaker for c in splits.train if c.speaker} == set(SPEAKERS[2:])
    assert len([c for c in splits.train if c.label != "_silence_"]) == 4 * 8


def test_folders_outside_the_word_list_become_unknown_and_keep_their_word(folder):
    clips = read_speech_commands(folder, options()).train
    labels = {(c.word, c.label) for c in clips if c.label != "_silence_"}
    assert labels == {("yes", "yes"), ("no", "no"), ("bed", "_unknown_"), ("cat", "_unknown_")}
    assert class_names(["yes", "no"]) == ["_silence_", "_unknown_", "yes", "no"]


def test_background_noise_is_never_a_word_and_only_feeds_silence(folder):
    splits = read_speech_commands(folder, options(silence_fraction=0.25))
    for split in (splits.train, splits.validation, splits.test):
        commands = [c for c in split if c.label in ("yes", "no")]
        silence = [c for c in split if c.label == "_silence_"]
        assert len(silence) == math.ceil(0.25 * len(commands))
        assert all(c.path.endswith("_background_noise_/white_noise.wav") and c.speaker is None for c in silence)
        assert all(0 <= c.start <= 4.0 and 0 <= c.gain <= 1 for c in silence)
        assert not any(Path(c.path).parent.name == "_background_noise_" for c in split if c.label != "_silence_")


def test_unknown_clips_are_a_fixed_share_of_the_command_clips(folder):
    first = read_speech_commands(folder, options(unknown_fraction=0.25)).train
    again = read_speech_commands(folder, options(unknown_fraction=0.25)).train
    unknown = [c for c in first if c.label == "_unknown_"]
    assert len(unknown) == math.ceil(0.25 * 16)  # 16 training clips of yes and no
    assert unknown == [c for c in again if c.label == "_unknown_"]
    everything = read_speech_commands(folder, options(unknown_fraction=None)).train
    assert len([c for c in everything if c.label == "_unknown_"]) == 16


def test_the_v2_12_words_are_the_default_and_a_missing_word_folder_is_named(folder):
    assert command_words(None)[:4] == ["yes", "no", "up", "down"]
    with pytest.raises(DataError, match=r"sc/up: no such folder.*'up'"):
        read_speech_commands(folder, None)


def test_a_folder_without_lists_is_one_split_of_every_clip(tmp_path):
    root = speakers_folder(tmp_path / "flat", ["yes", "no", "bed"], SPEAKERS[:3], noise=False)
    clips = read_speech_commands(root, options())
    assert isinstance(clips, list) and len(clips) == 9
    assert not any(c.label == "_silence_" for c in clips)  # no noise folder: nothing to cut silence from


def test_every_clip_can_be_read_as_one_split_whatever_the_lists_say(folder):
    assert len([c for c in read_every_clip(folder, options()) if c.label != "_silence_"]) == 40
    assert isinstance(read_speech_commands(folder, options(use_lists=False)), list)


def test_a_list_entry_naming_a_missing_file_is_an_error_with_its_line(folder):
    (folder / "testing_list.txt").write_text("yes/s01_nohash_0.wav\n\nno/ghost_nohash_0.wav\n")
    with pytest.raises(DataError, match=r"testing_list.txt, line 3: .*no/ghost_nohash_0.wav does not exist"):
        read_speech_commands(folder, options())


def test_a_clip_in_both_lists_or_a_listed_noise_clip_is_an_error(folder):
    (folder / "testing_list.txt").write_text("yes/s00_nohash_0.wav\n")
    with pytest.raises(DataError, match="also listed at .*validation_list.txt, line 1"):
        read_speech_commands(folder, options())
    (folder / "testing_list.txt").write_text("_background_noise_/white_noise.wav\n")
    with pytest.raises(DataError, match="background-noise clip"):
        read_speech_commands(folder, options())


@pytest.mark.parametrize("name, content, message", [
    ("notes.txt", b"a note", "not an audio file"),
    ("broken.wav", b"RIFF\x00\x00garbage", "cannot read the audio"),
])
def test_unreadable_or_non_audio_files_are_named(folder, name, content, message):
    (folder / "yes" / name).write_bytes(content)
    with pytest.raises(DataError, match=f"yes/{name}: {message}"):
        read_speech_commands(folder, options())


def test_an_empty_clip_is_named(folder):
    write_wav(folder / "no" / "empty_nohash_0.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(DataError, match="no/empty_nohash_0.wav: the clip holds no samples"):
        read_speech_commands(folder, options())


def test_a_path_that_is_no_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist; expected a Speech Commands folder"):
        read_speech_commands(tmp_path / "nowhere", options())


@pytest.mark.parametrize("rate, channels, subtype", [(8000, 1, "PCM_16"), (44100, 2, "PCM_24"), (16000, 2, "FLOAT")])
def test_other_rates_stereo_and_24_bit_are_converted(tmp_path, rate, channels, subtype):
    mono = tone(500, 0.8, rate)
    samples = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    root = write_wav(tmp_path / "odd" / "yes" / "x_nohash_0.wav", samples, rate, subtype).parents[1]
    (clip,) = read_speech_commands(root, options(words=["yes"]))
    waveform = load_clip(clip, 16000, 16000)
    assert waveform.shape == (16000,) and waveform.dtype == torch.float32
    assert abs(float(waveform.abs().max()) - 0.5) < 0.02 and float(waveform[13000:].abs().max()) == 0


def test_layout_detection_is_cheap_and_specific(folder, tmp_path):
    assert is_speech_commands(folder)
    assert is_speech_commands(speakers_folder(tmp_path / "plain", ["yes"], ["a"], noise=False))
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "x.txt").write_text("x")
    assert not is_speech_commands(tmp_path / "texts")
    assert not is_speech_commands(folder / "validation_list.txt")


def test_detection_imports_neither_torch_nor_soundfile(folder):
    plugins = Path(__file__).resolve().parents[2] / "plugins"
    code = ("import sys; from crossfuse_smarthome.speech_commands import is_speech_commands; "
            f"assert is_speech_commands({str(folder)!r}); "
            "assert 'torch' not in sys.modules and 'soundfile' not in sys.modules")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_speaker_ids_come_from_the_file_name():
    assert speaker_of("yes/c50f55b8_nohash_0.wav") == "c50f55b8"
    assert speaker_of("recording.wav") is None


@pytest.mark.parametrize("words, message", [
    ([True, "no"], "quote them"), (["yes", "yes"], "more than once"), (["_unknown_"], "cannot be a command"),
    ([], "empty"),
])
def test_bad_word_lists_are_config_errors(words, message):
    with pytest.raises(ConfigError, match=message):
        command_words(SimpleNamespace(words=words))


def test_held_out_speakers_never_straddle_the_split():
    clips = [VoiceClip(f"{w}/{s}_nohash_{n}.wav", w, w, s) for s in SPEAKERS * 3 for w in ("yes", "no") for n in (0, 1)]
    rest, held = hold_out_speakers(clips, 0.3, "validation")
    assert held and rest and not {c.speaker for c in rest} & {c.speaker for c in held}
    assert hold_out_speakers(clips, 0.3, "validation") == (rest, held)
    silence = [VoiceClip("noise.wav", "_silence_", "_silence_", None, start) for start in range(40)]
    _, held_silence = hold_out_speakers(silence, 0.5, "validation")
    assert 5 < len(held_silence) < 35  # each crop is its own group, not one block


def test_a_readme_among_the_noise_clips_is_ignored_as_in_speech_commands(folder):
    (folder / "_background_noise_" / "README.md").write_text("About these recordings.")
    silence = [c for c in read_speech_commands(folder, options()).train if c.label == "_silence_"]
    assert silence and all(c.path.endswith(".wav") for c in silence)
