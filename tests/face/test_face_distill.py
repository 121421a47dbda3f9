"""Face matching distilled: a student with a narrower embedding learns the teacher's geometry."""

from __future__ import annotations

import pytest

from crossfuse.testing import smoke_fit

from face_files import TINY


def test_a_narrower_student_trains_against_the_teacher_and_reports_both(tiny_face_run, tmp_path):
    student = smoke_fit("security-face-match", tmp_path / "student", backbone="tiny-cnn",
                        overrides=TINY + ["head.embedding_dim=8"], distill_from=str(tiny_face_run.run_dir))
    side = student.report["distillation"]
    assert side["main_metric"] == tiny_face_run.report["main_metric"]
    assert side["student"]["parameters"] < side["teacher"]["parameters"]
    main = side["main_metric"]
    for split in ("validation", "test"):  # the teacher scored on the student's own pairs equals its report
        assert side["teacher"]["splits"][split] == pytest.approx(tiny_face_run.report["splits"][split][main], abs=1e-9)


def test_the_face_distillation_loss_falls_to_the_margin_loss_when_the_geometry_matches(tiny_face_run):
    import torch

    import crossfuse
    from crossfuse.config import DistillConfig
    from crossfuse_face.heads import MarginHead

    predictor = crossfuse.load(tiny_face_run.run_dir)
    task, model = predictor.task, predictor.model
    images = torch.rand(4, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 3])
    model.margin = MarginHead(16, 8, "arcface", 0.5, 30.0)  # a served run has none: training needs one
    with torch.no_grad():
        embeddings, logits = model(images, labels, with_embeddings=True)
        hard = torch.nn.functional.cross_entropy(logits, labels)
        distill = DistillConfig(teacher="unused", alpha=0.5)
        same = task.distillation_step(model, {"images": images, "labels": labels}, {"embedding": embeddings}, distill)
        other = task.distillation_step(model, {"images": images, "labels": labels},
                                       {"embedding": torch.randn(4, 64)}, distill)
    assert same.item() == pytest.approx(0.5 * hard.item(), rel=1e-5)
    assert other.item() > same.item()
