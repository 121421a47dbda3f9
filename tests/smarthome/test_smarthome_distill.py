"""Keyword spotting distilled: a student spotter learns from a teacher run's clip logits."""

from __future__ import annotations

import pytest

import crossfuse
from crossfuse.errors import ConfigError

from voice_files import tone_commands

OVERRIDES = ["data.words=[lights, music, on]", "data.unknown_fraction=null", "data.silence_fraction=0.3",
             "data.stream.babble_seconds=5", "train.batch_size=16", "train.threads=1"]


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voice-distill")
    root = tone_commands(folder / "sc", ["lights", "music", "on", "bed", "cat"], 6, validation=[4], testing=[5])
    teacher = crossfuse.run("smarthome-voice-commands", data=str(root), backbone="bc-resnet-1", epochs=1,
                            output=str(folder / "teacher"), overrides=OVERRIDES, progress=False)
    return root, teacher


def test_a_student_spotter_reports_its_teacher_beside_it(voices, tmp_path):
    root, teacher = voices
    student = crossfuse.run("smarthome-voice-commands", data=str(root), backbone="mel-cnn", epochs=1,
                            output=str(tmp_path / "student"), overrides=OVERRIDES, progress=False,
                            distill_from=str(teacher.run_dir))
    side = student.report["distillation"]
    assert side["teacher"]["backbone"] == "bc-resnet-1" and side["student"]["backbone"] == "mel-cnn"
    for split in ("validation", "test"):
        assert side["teacher"]["splits"][split] == pytest.approx(teacher.report["splits"][split]["accuracy"], abs=1e-9)


def test_a_teacher_with_other_commands_is_refused(voices, tmp_path):
    root, teacher = voices
    other = [o if not o.startswith("data.words") else "data.words=[lights, music]" for o in OVERRIDES]
    with pytest.raises(ConfigError, match="its classes .* differ from this run's"):
        crossfuse.run("smarthome-voice-commands", data=str(root), backbone="mel-cnn", epochs=1,
                      output=str(tmp_path / "student"), overrides=other, progress=False,
                      distill_from=str(teacher.run_dir))
    assert not (tmp_path / "student").exists()
