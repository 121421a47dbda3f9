"""``crossfuse export`` of an image + note run: the fused classifier, with the presence flags as an input.

Evaluation calls the model's ``encode`` once and ``classify`` three times (fused, image alone,
note alone); the file holds ``forward(images, input_ids, attention_mask, keep)``, and the
stand-in answers ``encode`` with the inputs and ``classify`` by running the file with ``keep``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from crossfuse.export import ExportSpec

from .scaling import SCALING_NOTE

INPUTS = ("images", "input_ids", "attention_mask", "keep")


class Fused(nn.Module):
    """``FusionClassifier.forward`` with ``keep`` required (ONNX inputs are never optional)."""

    def __init__(self, fusion: nn.Module):
        super().__init__()
        self.fusion = fusion

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                keep: torch.Tensor) -> torch.Tensor:
        return self.fusion(images, input_ids, attention_mask, keep=keep)


class FusedStandIn(nn.Module):
    """Called like a ``FusionClassifier`` by ``predict_step``: ``encode`` keeps the inputs, ``classify`` runs the file."""

    def __init__(self, exported: nn.Module):
        super().__init__()
        self.exported = exported

    def encode(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
        return {"images": images, "input_ids": input_ids, "attention_mask": attention_mask}

    def classify(self, features: dict[str, Any], keep: torch.Tensor) -> torch.Tensor:
        return self.exported(**features, keep=keep)


def fusion_spec(task: Any, model: nn.Module, batch: dict[str, Any]) -> ExportSpec:
    """The export of a medical-image-report model (see the module docstring)."""
    inputs = {name: batch[name] for name in INPUTS}
    axes = {name: {0: "batch"} for name in (*INPUTS, "logits")}
    axes["input_ids"] = axes["attention_mask"] = {0: "batch", 1: "sequence"}
    return ExportSpec(
        module=Fused(model).eval(), inputs=inputs, output_names=["logits"], dynamic_axes=axes,
        install=lambda _, stand_in: FusedStandIn(stand_in),
        part="both backbones (image and note encoder) and the fusion head",
        outputs={"logits": "[batch, outputs] raw logits: one per finding (sigmoid) or per class (softmax), before "
                           "the task state's calibration; thresholds in the task state"},
        left_out="nothing of the model. keep [batch, 2] says whether the image and the note are present (1.0 / "
                 "0.0): an empty note is tokenised as usual and hidden with keep[:, 1] = 0; scoring an input alone "
                 "is keep = [1, 0] or [0, 1] (the task state's alone_calibration and alone_thresholds apply then). "
                 f"{SCALING_NOTE}")
