"""smarthome-voice-commands end to end on tone words: run, report, predict (clips, folders, streams), eval.

The words are chords of their own pitch said by 14 "speakers" (pitch moved a little per speaker),
so BC-ResNet-1 learns them in a few seconds; validation and test speakers are never heard in
training, as in the demo.
"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

import crossfuse

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli
from voice_files import RATE, WORD_S, spoken, tone_commands, write_wav

TASK = "smarthome-voice-commands"
COMMANDS = ["lights", "music", "on"]
WORDS = COMMANDS + ["bed", "cat"]  # bed and cat are unknown words
OVERRIDES = ["data.words=[lights, music, on]", "data.unknown_fraction=null", "data.silence_fraction=0.3",
             "data.stream.babble_seconds=5", "train.batch_size=16", "train.lr=0.03", "train.warmup_ratio=0",
             "train.early_stopping_patience=null", "train.threads=1"]


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory):
    """One short CPU run on a tone-word folder: speakers 10 and 11 validate, 12 and 13 test."""
    folder = tmp_path_factory.mktemp("tone-run")
    root = tone_commands(folder / "sc", WORDS, 14, validation=[10, 11], testing=[12, 13])
    result = crossfuse.run(TASK, data=str(root), backbone="bc-resnet-1", epochs=10, output=str(folder / "run"),
                           overrides=OVERRIDES, progress=False)
    return SimpleNamespace(root=root, run_dir=result.run_dir, report=result.report)


def test_the_report_has_unseen_voice_accuracy_false_accepts_and_pictures(tone_run):
    report = json.loads((tone_run.run_dir / "report.json").read_text())
    test = report["splits"]["test"]
    assert test["accuracy"] >= 0.9  # speakers 12 and 13 were never heard in training
    assert set(test["accuracy_per_voice"]) == {"s12", "s13"}
    assert set(test["per_class"]) == {"_silence_", "_unknown_", *COMMANDS}
    assert isinstance(test["false_accepts_per_hour"], float) and test["stream_recall"] >= 0.8
    assert set(test["stream"]["noise"]["sources"]) == {"hiss.wav", "unknown-words-1-talker", "unknown-words-4-talkers"}
    state = json.loads((tone_run.run_dir / "task_state.json").read_text())
    assert state["words"] == COMMANDS and state["sample_rate"] == RATE
    assert test["stream"]["threshold"] == state["stream"]["threshold"] == state["calibration"]["threshold"]
    assert report["baseline"]["name"] == "logmel-logreg"
    assert report["pictures"] == ["confusion_matrix_validation.png", "confusion_matrix_test.png",
                                  "accuracy_per_voice.png", "reliability_validation.png", "reliability_test.png"]
    # Clip confidence is temperature-scaled on validation; the temperature is saved with the run.
    assert test["temperature"] == state["temperature"] and {"ece", "ece_before_scaling"} <= set(test)
    for name in report["pictures"]:
        assert (tone_run.run_dir / name).read_bytes().startswith(b"\x89PNG")


def test_predict_prints_the_command_its_probability_and_action_for_clips_and_folders(tone_run, tmp_path):
    write_wav(tmp_path / "clips" / "a.wav", spoken("lights", 20))
    write_wav(tmp_path / "clips" / "b.wav", spoken("music", 21))
    one = cli("predict", tone_run.run_dir, tmp_path / "clips" / "a.wav")
    assert one.returncode == 0, one.stderr
    label, probability, action, path = one.stdout.strip().split("\t")
    assert (label, json.loads(action), path) == ("lights", {"device": "lights", "action": "toggle"},
                                                 str(tmp_path / "clips" / "a.wav"))
    assert 0.5 < float(probability) <= 1
    folder = cli("predict", tone_run.run_dir, tmp_path / "clips", "--json")
    predictions = json.loads(folder.stdout)
    assert [(p["label"], p["action"]) for p in predictions] == [
        ("lights", {"device": "lights", "action": "toggle"}), ("music", {"device": "speaker", "action": "toggle"})]
    assert all(p["label"] == max(p["top"], key=p["top"].get) for p in predictions)


def long_recording(script, rng):
    """Faint noise (``(None, seconds)``) and one-second command clips (``(word, 1)``, the word 0.25 s
    in, each by an unseen speaker) end to end; returns the samples and each word's (word, onset)."""
    pieces, onsets, time = [], [], 0.0
    for speaker, (word, seconds) in enumerate(script, start=20):
        if word is None:
            pieces.append((0.003 * rng.standard_normal(int(seconds * RATE))).astype(np.float32))
        else:
            pieces.append(spoken(word, speaker, offset=0.25))
            onsets.append((word, time + 0.25))
        time += seconds
    return np.concatenate(pieces), onsets


def test_predict_stream_hears_each_command_at_its_time_and_nothing_in_the_silence(tone_run, tmp_path):
    script = [(None, 1.5), ("lights", 1), (None, 1.2), ("music", 1), (None, 2.0), ("on", 1), (None, 1.5),
              ("lights", 1), (None, 3.0)]
    samples, onsets = long_recording(script, np.random.default_rng(0))
    path = write_wav(tmp_path / "kitchen.wav", samples)
    result = cli("predict", tone_run.run_dir, "--stream", path, "--json")
    assert result.returncode == 0, result.stderr
    (heard,) = json.loads(result.stdout)
    assert heard["seconds"] == pytest.approx(len(samples) / RATE, abs=1e-3)
    assert [c["command"] for c in heard["commands"]] == [word for word, _ in onsets]
    for command, (_, onset) in zip(heard["commands"], onsets):
        assert command["start"] - 0.3 <= onset and onset + WORD_S <= command["end"] + 0.3  # its window holds the word
    assert heard["commands"][1]["action"] == {"device": "speaker", "action": "toggle"}
    lines = cli("predict", tone_run.run_dir, "--stream", path).stdout.strip().split("\n")
    assert [line.split("\t")[1] for line in lines] == [word for word, _ in onsets]


def test_eval_uses_the_testing_list_or_every_clip_of_a_folder_without_lists(tone_run, tmp_path):
    listed = cli("eval", tone_run.run_dir, "--data", tone_run.root, "--json")
    assert listed.returncode == 0, listed.stderr
    metrics = json.loads(listed.stdout)
    assert metrics["confusion_matrix"] == tone_run.report["splits"]["test"]["confusion_matrix"]
    assert metrics["false_accepts_per_hour"] == tone_run.report["splits"]["test"]["false_accepts_per_hour"]
    flat = shutil.copytree(tone_run.root, tmp_path / "flat")
    for name in ("validation_list.txt", "testing_list.txt"):
        (flat / name).unlink()
    every = json.loads(cli("eval", tone_run.run_dir, "--data", flat, "--json").stdout)
    commands = 14 * len(COMMANDS)
    assert sum(map(sum, every["confusion_matrix"])) == 14 * len(WORDS) + int(np.ceil(0.3 * commands))
    assert set(every["accuracy_per_voice"]) == {f"s{i}" for i in range(14)}


@pytest.mark.parametrize("rate, channels, subtype", [(8000, 1, "PCM_16"), (44100, 2, "PCM_24"), (16000, 2, "FLOAT")])
def test_other_rates_stereo_and_24_bit_input_are_converted(tone_run, tmp_path, rate, channels, subtype):
    mono = spoken("lights", 22, rate=rate)
    samples = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    path = write_wav(tmp_path / "odd.wav", samples, rate, subtype)
    (prediction,) = crossfuse.load(tone_run.run_dir).predict([str(path)])
    assert prediction["label"] == "lights"


def test_explain_draws_saliency_over_the_spectrogram(tone_run, tmp_path):
    clip = write_wav(tmp_path / "on.wav", spoken("on", 23, offset=0.3))
    result = cli("predict", tone_run.run_dir, clip, "--explain", "--explain-dir", tmp_path / "why", "--json")
    assert result.returncode == 0, result.stderr
    (explained,) = json.loads(result.stdout)
    assert explained["label"] == "on" and 0 <= explained["saliency_peak_s"] <= 1
    assert (tmp_path / "why" / explained["saliency"]).read_bytes().startswith(b"\x89PNG")


# -- bad input: exit code 2, a message naming the file, nothing written ------------------------------


@pytest.fixture
def small_folder(tmp_path):
    return tone_commands(tmp_path / "sc", ["lights", "music", "bed"], 4, validation=[2], testing=[3], noise_seconds=2)


def refused_run(folder, tmp_path, *phrases, overrides=("data.words=[lights, music]",)):
    args = [a for o in overrides for a in ("--set", o)]
    result = cli("run", TASK, "--data", folder, "--output", tmp_path / "out", "--backbone", "bc-resnet-1", *args)
    assert_usage_error(result, *phrases)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, content, message", [
    ("notes.txt", b"a note", "notes.txt: not an audio file"),
    ("broken.wav", b"RIFF\x00\x00garbage", "broken.wav: cannot read the audio"),
])
def test_a_run_refuses_unreadable_or_non_audio_files(small_folder, tmp_path, name, content, message):
    (small_folder / "music" / name).write_bytes(content)
    refused_run(small_folder, tmp_path, message)


def test_a_run_refuses_an_empty_clip(small_folder, tmp_path):
    write_wav(small_folder / "lights" / "x_nohash_0.wav", np.zeros(0, np.float32))
    refused_run(small_folder, tmp_path, "x_nohash_0.wav: the clip holds no samples")


def test_a_run_refuses_a_list_entry_naming_a_missing_file(small_folder, tmp_path):
    (small_folder / "testing_list.txt").write_text("lights/s3_nohash_0.wav\nmusic/ghost_nohash_0.wav\n")
    refused_run(small_folder, tmp_path, "testing_list.txt, line 2", "music/ghost_nohash_0.wav does not exist")


def test_a_run_refuses_a_missing_word_folder(small_folder, tmp_path):
    refused_run(small_folder, tmp_path, "heat: no such folder, but data.words names 'heat'",
                overrides=("data.words=[lights, heat]",))


def test_predict_refuses_a_stream_shorter_than_one_window_and_unreadable_clips(tone_run, tmp_path):
    short = write_wav(tmp_path / "short.wav", spoken("on", 1)[: RATE // 2])
    assert_usage_error(cli("predict", tone_run.run_dir, "--stream", short),
                       "short.wav: 0.50 s of audio is shorter than one 1 s detection window")
    (tmp_path / "junk.wav").write_bytes(b"not a sound")
    assert_usage_error(cli("predict", tone_run.run_dir, tmp_path / "junk.wav"), "junk.wav: cannot read the audio")
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32))
    assert_usage_error(cli("predict", tone_run.run_dir, empty), "empty.wav: the audio file holds no samples")


def test_eval_refuses_a_folder_missing_a_command_word(tone_run, tmp_path):
    partial = tone_commands(tmp_path / "partial", ["lights", "on"], 2, testing=[1], noise_seconds=0)
    assert_usage_error(cli("eval", tone_run.run_dir, "--data", partial), "music: no such folder")


@pytest.mark.slow
def test_the_default_run_trains_on_the_demo_voices(tmp_path):
    result = crossfuse.run(TASK, backbone="bc-resnet-1", epochs=1, output=str(tmp_path / "demo-run"), progress=False,
                           overrides=["train.max_steps=3", "data.stream.babble_seconds=10",
                                      "data.stream.recall_commands=40"])
    report = result.report
    assert report["data"]["words"][:4] == ["on", "off", "up", "down"] and report["sizes"]["test"] == 366
    assert len(report["splits"]["test"]["accuracy_per_voice"]) == 17
    sources = report["splits"]["test"]["stream"]["noise"]["sources"]
    assert {"pink_noise.wav", "hum.wav", "babble.wav", "unknown-words-4-talkers"} <= set(sources)
    assert report["splits"]["test"]["stream"]["commands"]["commands"] == 40
