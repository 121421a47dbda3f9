"""Medical imaging distilled: a multi-label student learns from a teacher's per-finding probabilities."""

from __future__ import annotations

import json

import pytest

from crossfuse.testing import smoke_fit

from medical_files import write_class_folders, write_films

TINY = ["backbone.image_size=32", "train.batch_size=16"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    data = write_films(root / "films.npz")
    return smoke_fit("medical-imaging", root / "run", backbone="tiny-cnn", overrides=TINY, data=str(data)), data


def test_a_multilabel_student_reports_the_teacher_beside_it(teacher, tmp_path):
    run, data = teacher
    student = smoke_fit("medical-imaging", tmp_path / "student", backbone="tiny-cnn", data=str(data),
                        overrides=TINY + ["head.type=linear", "distill.alpha=0.8"], distill_from=str(run.run_dir))
    side = student.report["distillation"]
    assert side["main_metric"] == "auroc"
    saved = json.loads((student.run_dir / "report.json").read_text())["distillation"]
    assert saved["teacher"]["splits"].keys() == {"validation", "test"}
    assert saved["teacher"]["splits"]["test"] == run.report["splits"]["test"]["auroc"]


def test_a_teacher_with_other_findings_is_refused_before_anything_is_written(teacher, tmp_path):
    from crossfuse.errors import ConfigError

    run, _ = teacher
    folders = write_class_folders(tmp_path / "classes")
    with pytest.raises(ConfigError, match=r"it predicts \['opacity', 'nodule', 'effusion', 'cardiomegaly'\] \(sigmoid\)"):
        smoke_fit("medical-imaging", tmp_path / "student", backbone="tiny-cnn", data=str(folders), overrides=TINY,
                  distill_from=str(run.run_dir))
    assert not (tmp_path / "student").exists()
