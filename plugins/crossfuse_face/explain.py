"""``crossfuse predict RUN a.jpg b.jpg --explain``: where each face of a pair drove the match.

For every image of a pair, Grad-CAM (:func:`crossfuse.explain.grad_cam`) over the backbone's last
spatial feature map, of a one-column score: the cosine between the image's embedding and the
other image's (the one ``predict`` compared it with), negated when the verdict is "different".
Grad-CAM keeps positive evidence only, so the map shows the regions that drove the verdict:
what made the two faces alike for a match, what set them apart for a non-match. The heat map is
drawn over the image and written into the explanation folder. The score explained is the plain
image's embedding; with ``data.flip_test`` the similarity ``predict`` reports also counts the
mirror image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from crossfuse.explain import grad_cam, last_feature_map, save_heatmap
from crossfuse.media import load_image


def pair_heatmaps(model: nn.Module, images: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps ``[B, H, W]`` of ``images`` for their cosine with ``others`` (``[B, D]``, normalised;
    negate a row to explain what sets the two apart)."""

    def similarity(batch: torch.Tensor) -> torch.Tensor:
        return (F.normalize(model(batch).float(), dim=1) * others).sum(1, keepdim=True)

    layer = last_feature_map(model.backbone, images[:1])
    return grad_cam(similarity, layer, images, target=[0] * len(images))


def explain_pairs(pairs: Sequence[dict[str, Any]], tensors: Callable[[list[str]], torch.Tensor],
                  embeddings: torch.Tensor, model: nn.Module, output_dir: Path, first: int = 0) -> list[dict[str, Any]]:
    """Add ``heatmaps`` (two picture paths, in input order) to each pair prediction.

    ``tensors(paths)`` gives the model inputs of image files; ``embeddings`` are the normalised
    embeddings ``predict`` compared, two rows per pair. Pictures are named ``pairNNN_a_STEM.png``
    and ``pairNNN_b_STEM.png``, numbering the pairs from ``first + 1``.
    """
    paths = [path for pair in pairs for path in pair["input"]]
    device = next(model.parameters()).device
    partner = torch.arange(len(paths)) ^ 1  # 0 <-> 1, 2 <-> 3 ...: each image is compared with the other
    verdict = torch.tensor([1.0 if pair["same"] else -1.0 for pair in pairs]).repeat_interleave(2)[:, None]
    maps = pair_heatmaps(model, tensors(paths).to(device), (verdict * embeddings[partner]).to(device))
    results = []
    for index, pair in enumerate(pairs):
        written = []
        for side, row in (("a", 2 * index), ("b", 2 * index + 1)):
            name = f"pair{first + index + 1:03d}_{side}_{Path(paths[row]).stem}.png"
            save_heatmap(load_image(paths[row]), maps[row], output_dir / name)
            written.append(str(output_dir / name))
        results.append({**pair, "heatmaps": written})
    return results
