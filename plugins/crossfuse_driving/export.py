"""``crossfuse export`` of a detection run: the whole torchvision detector, one image per call.

torchvision's detectors export to ONNX (opset 17, the TorchScript-based exporter) with their own
resize / normalisation transform, box decoding and NMS inside; they take a list of images, so the
file takes one image ``[3, H, W]`` and returns that image's boxes, scores and labels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from crossfuse.export import ExportSpec

OUTPUTS = ("boxes", "scores", "labels")


class OneImage(nn.Module):
    """``detector([image])[0]`` as a tuple ``(boxes [N, 4], scores [N], labels [N])``."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        found = self.detector([image])[0]
        return tuple(found[name] for name in OUTPUTS)


class EachImage(nn.Module):
    """A one-image stand-in called like the detector: a list of images -> a list of detection dicts."""

    def __init__(self, one_image: nn.Module):
        super().__init__()
        self.one_image = one_image

    def forward(self, images: list[torch.Tensor], targets: Any = None) -> list[dict[str, torch.Tensor]]:
        return [dict(zip(OUTPUTS, self.one_image(image))) for image in images]


def detector_spec(task: Any, model: nn.Module, batch: dict[str, Any]) -> ExportSpec:
    """The export of a driving-detection model (see the module docstring)."""
    classes = ", ".join(task.config.data.classes)
    return ExportSpec(
        module=OneImage(model).eval(), inputs={"image": batch["images"][0]}, output_names=list(OUTPUTS),
        dynamic_axes={"image": {1: "height", 2: "width"}, **{name: {0: "detections"} for name in OUTPUTS}},
        structure="tuple", install=lambda _, stand_in: EachImage(stand_in),
        part="the whole torchvision detector (its resize and normalisation, backbone + FPN, head, box decoding "
             "and NMS), one image per call",
        outputs={"boxes": "[N, 4] x1, y1, x2, y2 in pixels of the input image",
                 "scores": "[N] confidence of each box",
                 "labels": f"[N] class index: 1.. in the order of data.classes ({classes}); 0 is background, drop it"},
        left_out="nothing of the detector. The caller reads each image as float32 RGB [3, H, W] scaled to [0, 1] "
                 "and calls the file once per image; the score threshold of `crossfuse predict` is applied after.")
