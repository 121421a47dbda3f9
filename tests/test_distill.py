"""Knowledge distillation's core: the soft-target losses and the checks before a run starts."""

from __future__ import annotations

import math

import pytest
import torch

from crossfuse.distill import blend, similarity_matching, soft_binary_cross_entropy, soft_cross_entropy
from crossfuse.errors import ConfigError


def test_soft_cross_entropy_is_zero_when_the_student_matches_the_teacher():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    assert soft_cross_entropy(logits, logits.clone(), temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_cross_entropy_is_the_kl_divergence_of_the_softened_distributions_times_t_squared():
    student, teacher = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    t = 2.0
    p = torch.softmax(teacher / t, -1)[0]
    q = torch.softmax(student / t, -1)[0]
    expected = float((p * (p / q).log()).sum()) * t * t
    assert soft_cross_entropy(student, teacher, t).item() == pytest.approx(expected, rel=1e-5)


def test_soft_cross_entropy_pulls_the_student_toward_the_teacher():
    student = torch.zeros(1, 3, requires_grad=True)
    teacher = torch.tensor([[0.0, 0.0, 4.0]])
    soft_cross_entropy(student, teacher, 1.0).backward()
    assert student.grad[0, 2] < 0 < student.grad[0, 0]  # a gradient step raises the teacher's class


def test_soft_binary_cross_entropy_is_smallest_at_the_teachers_probabilities():
    probabilities = torch.tensor([[0.9, 0.2, 0.5]])
    at_teacher = soft_binary_cross_entropy(torch.logit(probabilities), probabilities, 1.0).item()
    elsewhere = soft_binary_cross_entropy(torch.zeros(1, 3), probabilities, 1.0).item()
    assert at_teacher < elsewhere


def test_similarity_matching_compares_embeddings_of_different_widths():
    torch.manual_seed(0)
    teacher = torch.randn(6, 32)
    projected = teacher @ torch.linalg.qr(torch.randn(32, 32))[0][:, :16]  # not the same geometry
    assert similarity_matching(teacher[:, :32], teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity_matching(projected, teacher).item() > 0.0
    assert similarity_matching(torch.randn(6, 8), teacher).item() > similarity_matching(teacher * 3, teacher).item()


def test_blend_weighs_the_teacher_by_alpha():
    assert blend(torch.tensor(2.0), torch.tensor(10.0), 0.25).item() == pytest.approx(0.25 * 10 + 0.75 * 2)


def test_outputs_that_do_not_line_up_are_refused_with_both_shapes():
    with pytest.raises(ConfigError, match=r"\(4, 3\) but the teacher's \(4, 5\)"):
        soft_cross_entropy(torch.zeros(4, 3), torch.zeros(4, 5), 2.0)


@pytest.mark.parametrize("key, value, message", [
    ("distill.alpha", "1.5", "distill.alpha must be in"),
    ("distill.temperature", "0", "distill.temperature must be positive"),
])
def test_distill_values_out_of_range_are_refused_before_anything_runs(tmp_path, key, value, message):
    from crossfuse.api import resolve_config
    from crossfuse.testing import write_tiny_text_backbone

    teacher = write_tiny_text_backbone(tmp_path / "not-a-run")
    with pytest.raises(ConfigError, match=message):
        resolve_config("finance-sentiment", overrides=[f"distill.teacher={teacher}", f"{key}={value}"])


def test_a_teacher_folder_that_is_not_a_run_is_named(tmp_path):
    from crossfuse.api import resolve_config
    from crossfuse.errors import CrossfuseError

    with pytest.raises(CrossfuseError, match="not a crossfuse run directory"):
        resolve_config("finance-sentiment", distill_from=str(tmp_path))
    with pytest.raises(ConfigError, match="no such run directory"):
        resolve_config("finance-sentiment", distill_from=str(tmp_path / "missing"))


def test_a_task_without_distillation_says_so(tmp_path):
    from crossfuse.api import resolve_config

    (tmp_path / "config.yaml").write_text("task: driving-detection\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'driving-detection' does not support distillation"):
        resolve_config("driving-detection", distill_from=str(tmp_path))


def test_t_squared_keeps_the_gradient_size_comparable_across_temperatures():
    torch.manual_seed(1)
    student, teacher = torch.randn(64, 5), torch.randn(64, 5) * 3
    norms = []
    for t in (2.0, 8.0):
        s = student.clone().requires_grad_(True)
        soft_cross_entropy(s, teacher, t).backward()
        norms.append(float(s.grad.norm()))
    assert math.isclose(norms[0], norms[1], rel_tol=0.3)  # without the T^2 factor they would be 16x apart


class SignOfX(torch.nn.Module):
    """A fixed 'teacher' that knows another rule than the labels: class 1 iff x > 0."""

    def forward(self, points):
        return torch.stack([-4 * points[:, 0], 4 * points[:, 0]], dim=1)


def distilled_toy(tmp_path, alpha):
    """The toy task (XOR labels) trained against the SignOfX teacher with weight ``alpha``."""
    from types import SimpleNamespace

    from torch.nn import functional as F

    from crossfuse.distill import Teacher

    from toy_task import ToyTask, make_trainer

    class DistilledToy(ToyTask):
        def distillation_step(self, model, batch, teacher, distill):
            logits = model(points=batch["points"])
            return blend(F.cross_entropy(logits, batch["labels"]),
                         soft_cross_entropy(logits, teacher["logits"], distill.temperature), distill.alpha)

    trainer = make_trainer(tmp_path, epochs=8)
    trainer.task.__class__ = DistilledToy
    teacher = Teacher.__new__(Teacher)  # a real Teacher around a fixed model instead of a loaded run
    teacher.task, teacher.model = ToyTask(trainer.task.config), SignOfX()
    teacher.config, teacher.predictor = SimpleNamespace(alpha=alpha, temperature=2.0), SimpleNamespace()
    trainer.teacher = teacher.to(trainer.device)
    trainer.fit()
    points = torch.stack([p for p, _ in trainer.data.test + trainer.data.validation])
    labels = torch.stack([y for _, y in trainer.data.test + trainer.data.validation])
    trainer.model.eval()
    with torch.no_grad():
        predicted = trainer.model(points=points).argmax(-1)
    agreement = float((predicted == (points[:, 0] > 0).long()).float().mean())
    return agreement, float((predicted == labels).float().mean())


def test_a_student_taught_only_by_the_teacher_learns_the_teachers_rule_not_the_labels(tmp_path):
    with_teacher, accuracy = distilled_toy(tmp_path / "a", alpha=1.0)
    assert with_teacher > 0.9 and accuracy < 0.75


def test_without_the_teachers_weight_the_student_learns_the_labels(tmp_path):
    with_teacher, accuracy = distilled_toy(tmp_path / "a", alpha=0.0)
    assert accuracy > with_teacher


def test_the_comparison_names_the_layers_a_student_kept():
    from crossfuse.config import BackboneConfig, RunConfig
    from crossfuse.distill import backbone_label

    assert backbone_label(RunConfig(task="t", backbone=BackboneConfig(name="minilm", layers=3))) == \
        "minilm (first 3 layers)"
    fused = RunConfig(task="t", backbones={"image": BackboneConfig(name="resnet18"), "text": BackboneConfig(name="b")})
    assert backbone_label(fused) == {"image": "resnet18", "text": "b"}
