"""Knowledge distillation: train a run's (smaller) model against a finished run of the same task.

``crossfuse run TASK --distill-from TEACHER_RUN --backbone SMALLER`` (config ``distill.teacher``)
loads the teacher run as :func:`crossfuse.load` would, runs it beside the student on every
training batch and hands its :meth:`~crossfuse.task.Task.predict_step` outputs to the task's
:meth:`~crossfuse.task.Task.distillation_step`, which blends the teacher's soft targets with the
task's own loss. The teacher sees each training sample through its *own* preprocessing (its
tokenizer, image size, audio front end), unaugmented, so teacher and student may have different
backbones. The teacher is frozen, in eval mode, and draws no random numbers: resume stays exact.

The loss helpers here are the field's standard ones; a plugin picks the one that fits its outputs:

- :func:`soft_cross_entropy`: softmax classifiers (Hinton, Vinyals and Dean 2015, "Distilling the
  Knowledge in a Neural Network"): KL divergence between temperature-softened distributions, × T².
- :func:`soft_binary_cross_entropy`: multi-label (sigmoid) outputs, each label its own distribution.
- :func:`similarity_matching`: embeddings of different widths (face matching): the batch's cosine
  similarity matrices are matched (Tung and Mori 2019, "Similarity-Preserving Knowledge Distillation").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .errors import ConfigError

# -- losses ----------------------------------------------------------------------------------


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) of the softmax at ``temperature``, scaled by T² so its gradients keep
    the size of the hard loss's whatever T is. Both ``[B, C]``; computed in fp32."""
    check_same_shape(student_logits, teacher_logits, "logits")
    t = float(temperature)
    log_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * t * t


def soft_binary_cross_entropy(student_logits: torch.Tensor, teacher_probabilities: torch.Tensor,
                              temperature: float) -> torch.Tensor:
    """Multi-label distillation: each output's sigmoid at ``temperature`` against the teacher's
    probabilities softened the same way (through their logits), mean over outputs, × T²."""
    check_same_shape(student_logits, teacher_probabilities, "outputs")
    t = float(temperature)
    teacher_logits = torch.logit(teacher_probabilities.float().clamp(1e-6, 1 - 1e-6))
    target = torch.sigmoid(teacher_logits / t)
    return F.binary_cross_entropy_with_logits(student_logits.float() / t, target) * t * t


def similarity_matching(student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the batch's pairwise cosine similarities, student against teacher.

    Works for embeddings of any two widths: what is transferred is which samples lie close together.
    """
    if student_embeddings.shape[0] != teacher_embeddings.shape[0]:
        raise ConfigError(f"distillation: the student embedded {student_embeddings.shape[0]} samples, the teacher "
                          f"{teacher_embeddings.shape[0]}")
    student = F.normalize(student_embeddings.float(), dim=1)
    teacher = F.normalize(teacher_embeddings.float(), dim=1)
    return F.mse_loss(student @ student.T, teacher @ teacher.T)


def blend(task_loss: torch.Tensor, soft_loss: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha`` × the teacher's soft loss + (1 - ``alpha``) × the task's own loss."""
    return alpha * soft_loss + (1.0 - alpha) * task_loss


def softmax_distillation(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, distill: Any,
                         label_smoothing: float = 0.0) -> torch.Tensor:
    """A single-label classifier's whole distillation loss: the labels' cross-entropy blended with
    :func:`soft_cross_entropy` against the teacher's logits (``distill.alpha``, ``distill.temperature``)."""
    hard = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return blend(hard, soft_cross_entropy(logits, teacher_logits, distill.temperature), distill.alpha)


def check_same_shape(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    """Refuse teacher outputs that do not line up with the student's (another label set, say)."""
    if student.shape != teacher.shape:
        raise ConfigError(f"distillation: the student's {what} have shape {tuple(student.shape)} but the teacher's "
                          f"{tuple(teacher.shape)}: the teacher run must predict the same outputs (labels, findings)")


# -- the teacher -----------------------------------------------------------------------------


def check_distill_config(task_class: type, distill: Any) -> None:
    """``distill.*`` keys that make no sense, found before anything runs."""
    from .runs import RunDir
    from .task import Task

    if not distill.teacher:
        return
    if task_class.distillation_step is Task.distillation_step:
        raise ConfigError(f"distill.teacher: task {task_class.name!r} does not support distillation (its plugin does "
                          f"not implement Task.distillation_step); drop --distill-from")
    if not 0.0 <= distill.alpha <= 1.0:
        raise ConfigError(f"distill.alpha must be in [0, 1] (the teacher's share of the loss), got {distill.alpha}")
    if distill.temperature <= 0:
        raise ConfigError(f"distill.temperature must be positive, got {distill.temperature}")
    if not Path(distill.teacher).is_dir():
        raise ConfigError(f"distill.teacher {distill.teacher}: no such run directory")
    run = RunDir.open(distill.teacher)
    teacher_task = run.read_config().get("task")
    if teacher_task != task_class.name:
        raise ConfigError(f"distill.teacher {distill.teacher}: a run of {teacher_task!r}; the teacher must be a run of "
                          f"the same task, {task_class.name!r}")
    if run.read_report() is None:
        raise ConfigError(f"distill.teacher {distill.teacher}: the run has not finished (no report.json); "
                          f"finish it with `crossfuse run {teacher_task} --output {distill.teacher} --resume`")


class Teacher:
    """A finished run, frozen, that produces soft targets for the student's training batches."""

    def __init__(self, run_dir: str | Path, distill: Any):
        from .api import load

        self.run_dir = Path(run_dir)
        self.config = distill
        self.predictor = load(run_dir, device="cpu")
        self.task, self.model = self.predictor.task, self.predictor.model
        self.model.requires_grad_(False)

    def check_student(self, task: Any) -> None:
        """The student's task (its data read) must predict what the teacher predicts."""
        task.check_teacher(self.task)

    def to(self, device: torch.device) -> "Teacher":
        """Move the teacher's model to the student's device."""
        self.model.to(device).eval()
        self.predictor.device = device
        return self

    def wrap(self, dataset: torch.utils.data.Dataset, collate: Any) -> tuple[Any, Any]:
        """A training dataset and collate function that also give the teacher's batch of each sample."""
        return WithTeacherInputs(dataset, self.task), CollateBoth(collate, self.task.collate)

    def loss(self, task: Any, model: Any, batch: Any, teacher_batch: Any, device: torch.device) -> torch.Tensor:
        """The student's distillation loss of one batch (under the trainer's autocast)."""
        from .outputs import move_to

        self.model.eval()  # the trainer puts the student in train mode each epoch; the teacher stays put
        with torch.no_grad():
            targets = self.task.predict_step(self.model, move_to(teacher_batch, device))
        return task.distillation_step(model, batch, targets, self.config)


class WithTeacherInputs(torch.utils.data.Dataset):
    """Items of a :class:`~crossfuse.trainer.Preprocessed` dataset paired with the same sample as the
    teacher prepares it for evaluation (no augmentation: it draws no random numbers)."""

    def __init__(self, dataset: Any, teacher_task: Any):
        self.dataset, self.teacher_task = dataset, teacher_task

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        sample = self.dataset.samples[self.dataset.indices[index]]
        return self.dataset[index], self.teacher_task.preprocess(sample, train=False)


class CollateBoth:
    """Collate the student's items with the student's task and the teacher's with the teacher's."""

    def __init__(self, student: Any, teacher: Any):
        self.student, self.teacher = student, teacher

    def __call__(self, items: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        return self.student([a for a, _ in items]), self.teacher([b for _, b in items])


# -- side by side ----------------------------------------------------------------------------


def side_by_side(student: dict[str, Any], teacher: Teacher, splits: dict[str, Sequence[Any]],
                 report_splits: dict[str, dict[str, Any]], main_metric: str, batch_size: int) -> dict[str, Any]:
    """Teacher and student on the student's evaluation splits: size, inference speed, main metric.

    ``student`` holds ``task``, ``model``, ``device``, ``amp_dtype``, ``run_dir`` and ``config`` (its RunConfig);
    the student's metrics come from its report (``report_splits``); the teacher is evaluated here on the
    same samples through its own preprocessing. Speed is measured on the largest split, one batch of
    warm-up first, on the student's device, one model after the other.
    """
    from .metrics import split_metrics

    timed_split = max(splits, key=lambda name: len(splits[name]))
    rows = {"student": _model_row(student["model"], student["run_dir"], backbone_label(student["config"])),
            "teacher": _model_row(teacher.model, teacher.run_dir, backbone_label(teacher.predictor.config))}
    rows["student"]["splits"] = {name: report_splits.get(name, {}).get(main_metric) for name in splits}
    rows["teacher"]["splits"] = {}
    device, amp = student["device"], student["amp_dtype"]
    for name, samples in splits.items():
        outputs, seconds = timed_outputs(teacher.task, teacher.model, samples, device, amp, batch_size)
        rows["teacher"]["splits"][name] = split_metrics(teacher.task, outputs, samples).get(main_metric)
        if name == timed_split:
            rows["teacher"]["samples_per_s"] = round(len(samples) / seconds, 1)
    _, seconds = timed_outputs(student["task"], student["model"], splits[timed_split], device, amp, batch_size)
    rows["student"]["samples_per_s"] = round(len(splits[timed_split]) / seconds, 1)
    ratio = rows["student"]["samples_per_s"] / max(rows["teacher"]["samples_per_s"], 1e-9)
    return {"main_metric": main_metric, "speed_split": timed_split, "device": str(device),
            "alpha": teacher.config.alpha, "temperature": teacher.config.temperature,
            "speedup": round(ratio, 2),
            "size_ratio": round(rows["student"]["parameters"] / max(rows["teacher"]["parameters"], 1), 3),
            **rows}


def backbone_label(config: Any) -> Any:
    """A run's backbone as the comparison names it: its name, and the layers it kept (``backbone.layers``);
    a dict by input for a task with several."""
    def label(section: Any) -> str:
        return section.name + (f" (first {section.layers} layers)" if section.layers else "")

    return {name: label(s) for name, s in config.backbones.items()} if config.backbones else label(config.backbone)


def _model_row(model: torch.nn.Module, run_dir: Path | str, backbone: Any) -> dict[str, Any]:
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    return {"run_dir": str(run_dir), "backbone": backbone,
            "parameters": sum(p.numel() for p in model.parameters()),
            "size_mb": round(sum(t.numel() * t.element_size() for t in tensors) / 2**20, 2)}


def timed_outputs(task: Any, model: torch.nn.Module, samples: Sequence[Any], device: torch.device,
                  amp_dtype: Any, batch_size: int) -> tuple[dict[str, Any], float]:
    """``predict_step`` outputs of ``samples`` and the seconds they took (after one batch of warm-up)."""
    from .trainer import Preprocessed, collect_outputs

    dataset = Preprocessed(samples, list(range(len(samples))), task, train=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=task.collate)
    collect_outputs(task, model, [next(iter(loader))], device, amp_dtype)  # warm-up: first-call costs
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    outputs = collect_outputs(task, model, loader, device, amp_dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return outputs, max(time.perf_counter() - started, 1e-9)
