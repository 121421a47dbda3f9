"""`crossfuse serve` on a tiny voice-command run: wav clips, and long recordings with stream=true."""

from __future__ import annotations

import numpy as np
import pytest

from serve_client import by_name, served, upload
from voice_files import spoken, tone_commands, write_wav

WORDS = ["lights", "music", "on", "bed", "cat"]
OVERRIDES = ["data.words=[lights, music, on]", "data.unknown_fraction=null", "data.silence_fraction=0.3",
             "data.stream.babble_seconds=5", "train.batch_size=16", "train.threads=1"]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    import crossfuse

    folder = tmp_path_factory.mktemp("voice-serve")
    root = tone_commands(folder / "sc", WORDS, 8, validation=[6], testing=[7])
    result = crossfuse.run("smarthome-voice-commands", data=str(root), backbone="bc-resnet-1", epochs=1,
                           output=str(folder / "run"), overrides=OVERRIDES, progress=False)
    return crossfuse.load(result.run_dir)


@pytest.fixture
def clips(tmp_path):
    return [write_wav(tmp_path / "a.wav", spoken("lights", 20)), write_wav(tmp_path / "b.wav", spoken("music", 21))]


def test_wav_uploads_get_the_commands_predict_returns(predictor, clips):
    expected = by_name(predictor.predict([str(p) for p in clips]), {str(p): p.name for p in clips})
    with served({"voice": predictor}) as server:
        answer = upload(server.url + "/predict", clips)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected and [p["input"] for p in answer.json()] == ["a.wav", "b.wav"]


def test_stream_true_treats_each_upload_as_a_recording_like_predict_stream(predictor, tmp_path):
    recording = write_wav(tmp_path / "long.wav", np.concatenate([spoken("lights", 20), spoken("on", 21),
                                                                 spoken("music", 22)]))
    expected = by_name(predictor.predict([str(recording)], stream=True), {str(recording): "long.wav"})
    with served({"voice": predictor}) as server:
        answer = upload(server.url + "/predict", [recording], {"stream": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected and answer.json()[0]["input"] == "long.wav"


def test_a_file_that_is_not_audio_is_a_400_naming_it(predictor, tmp_path):
    (tmp_path / "noise.wav").write_bytes(b"RIFF nonsense")
    with served({"voice": predictor}) as server:
        answer = upload(server.url + "/predict", [tmp_path / "noise.wav"])
    assert answer.status_code == 400 and answer.json()["error"].startswith("noise.wav: cannot read the audio")
