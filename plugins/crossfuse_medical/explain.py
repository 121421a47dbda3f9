"""``crossfuse predict RUN film.png --explain``: Grad-CAM heat maps of the findings over each image.

Grad-CAM (:func:`crossfuse.explain.grad_cam`, on Captum) weighs the image backbone's last
*spatial* feature map by the gradient of a finding's logit, so the map shows the regions that
raised that finding's score. Which findings get a map is ``--heatmaps``: those that pass their
saved threshold (multi-class: the predicted class), else the most likely one; only the most
likely one; or every finding. Each map is drawn over the image as the model saw it (grey or
colour, made square as ``data.resize`` says, enlarged to at least 256 pixels for the eye) and
written into the explanation folder as
``NNN_STEM_FINDING.png``, never next to the user's files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from crossfuse.errors import CrossfuseError
from crossfuse.explain import spatial_feature_map


def cam_layer(backbone: nn.Module, example: torch.Tensor) -> nn.Module:
    """The layer Grad-CAM reads in ``backbone``; a backbone without a spatial map is a clear error."""
    layer = spatial_feature_map(backbone, example)
    if layer is None:
        raise CrossfuseError(f"--explain: the image backbone ({getattr(backbone, 'arch', type(backbone).__name__)}) "
                             f"ends without a spatial feature map larger than 1 x 1 at this image size (a "
                             f"transformer ends in tokens), so Grad-CAM has nothing to draw; use a convolutional "
                             f"backbone (resnet18, efficientnet_b0, timm:convnext_tiny ...) or a larger "
                             f"backbone.image_size")
    return layer


def explained_outputs(prediction: dict[str, Any], which: str) -> list[int]:
    """Output indices to explain for one prediction (its ``findings`` are in output order)."""
    findings = prediction["findings"]
    top = max(range(len(findings)), key=lambda i: findings[i]["probability"])
    if which == "all":
        return list(range(len(findings)))
    if which == "positive":
        positive = [i for i, finding in enumerate(findings) if finding["positive"]]
        return positive or [top]
    return [top]


def heatmaps(forward: Callable[[torch.Tensor], torch.Tensor], layer: nn.Module, images: torch.Tensor,
             pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Grad-CAM maps ``[len(pairs), H, W]`` in [0, 1]: one per (image row, output index) pair.

    ``forward(images)`` returns the logits of the rows it is given (the pairs' rows, in order).
    """
    from crossfuse.explain import grad_cam

    rows = [row for row, _ in pairs]
    return grad_cam(forward, layer, images[rows], [index for _, index in pairs])


def for_display(picture: Any, side: int = 256) -> Any:
    """``picture`` enlarged (bicubic) so its longer side is at least ``side`` pixels: a heat map over a
    28- or 64-pixel film is readable only when drawn larger."""
    from PIL import Image

    scale = side / max(picture.size)
    if scale <= 1:
        return picture
    return picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.BICUBIC)


def heatmap_name(number: int, source: str, finding: str) -> str:
    """``NNN_STEM_FINDING.png`` with characters a file name should not hold replaced."""
    stem = Path(source.split(",")[0]).stem or "image"
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}_{finding}").strip("-")
    return f"{number:03d}_{clean}.png"


def non_trivial(heat: torch.Tensor) -> bool:
    """Whether a heat map shows anything: not one flat value."""
    return bool(heat.numel()) and float(heat.max() - heat.min()) > 1e-6
