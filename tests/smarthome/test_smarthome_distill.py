"""Keyword spotting distilled: a student spotter learns from a teacher run's clip logits."""

from __future__ import annotations

import pytest

from crossfuse.errors import ConfigError

from voice_files import tone_run


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tone_run(tmp_path_factory.mktemp("voice-distill"))


def test_a_student_spotter_reports_its_teacher_beside_it(teacher, tmp_path):
    root, run = teacher
    _, student = tone_run(root.parent, "mel-cnn", output=tmp_path / "student", distill_from=str(run.run_dir))
    side = student.report["distillation"]
    assert side["teacher"]["backbone"] == "bc-resnet-1" and side["student"]["backbone"] == "mel-cnn"
    for split in ("validation", "test"):
        assert side["teacher"]["splits"][split] == pytest.approx(run.report["splits"][split]["accuracy"], abs=1e-9)


def test_a_teacher_with_other_commands_is_refused(teacher, tmp_path):
    root, run = teacher
    with pytest.raises(ConfigError, match="its classes .* differ from this run's"):
        tone_run(root.parent, "mel-cnn", overrides=("data.words=[lights, music]",), output=tmp_path / "student",
                 distill_from=str(run.run_dir))
    assert not (tmp_path / "student").exists()
