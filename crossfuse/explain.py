"""Explanations for ``crossfuse predict --explain``, on Captum (the PyTorch attribution library).

A task's :meth:`~crossfuse.task.Task.explain` calls these with its model in eval mode and
gradients enabled:

- :func:`token_attributions`: integrated gradients over a text backbone's token embeddings;
- :func:`grad_cam`: Grad-CAM over the last convolutional feature map of an image model, and
  :func:`save_heatmap` to draw it over the input image;
- :func:`saliency`: gradient magnitude over any input tensor (a spectrogram, say).

Each takes a ``forward`` callable returning the scores ``[B, C]`` to explain and the ``target``
class index of every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn


def token_attributions(forward: Callable[..., torch.Tensor], embedding: nn.Module, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor, target: Sequence[int], tokenizer: Any,
                       steps: int = 32) -> list[list[tuple[str, float]]]:
    """Per-token integrated-gradients attributions (padding left out), one list per text.

    ``forward(input_ids, attention_mask)`` returns the scores; ``embedding`` is the token
    embedding layer. The baseline is the padding token everywhere but the special tokens, so a
    token's score says how much its presence moved the target score. Positive supports the target.
    """
    from captum.attr import LayerIntegratedGradients

    baseline = _padding_baseline(input_ids, tokenizer)
    attributions = LayerIntegratedGradients(forward, embedding).attribute(
        input_ids, baselines=baseline, target=list(target), additional_forward_args=(attention_mask,),
        n_steps=steps, internal_batch_size=max(1, len(input_ids)) * steps)
    scores = attributions.sum(dim=-1).detach()
    result = []
    for ids, mask, row in zip(input_ids.tolist(), attention_mask.tolist(), scores.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        result.append([(token, round(score, 4)) for token, keep, score in zip(tokens, mask, row) if keep])
    return result


def _padding_baseline(input_ids: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    keep = torch.tensor([[token in special for token in row] for row in input_ids.tolist()], dtype=torch.bool)
    return torch.where(keep.to(input_ids.device), input_ids, torch.full_like(input_ids, pad))


def spatial_feature_map(module: nn.Module, example: torch.Tensor) -> nn.Module | None:
    """The last leaf module of ``module`` whose output for ``example`` is a spatial 4-D feature map
    (Grad-CAM's layer); None when there is none, or when token sequences follow it (a ViT's patch
    embedding is such a map, but a transformer's evidence lives in its tokens). Global pooling, whose
    output is 1 x 1, does not count. The module runs once in eval mode (batch-norm statistics stay).
    """
    fired: list[tuple[nn.Module, bool, bool]] = []  # (module, spatial map, token sequence)

    def record(layer: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            spatial = output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1
            fired.append((layer, spatial, output.dim() == 3))

    hooks = [m.register_forward_hook(record) for m in module.modules() if not list(m.children())]
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(example)
    finally:
        module.train(training)
        for hook in hooks:
            hook.remove()
    last = max((i for i, (_, spatial, _) in enumerate(fired) if spatial), default=None)
    if last is None or any(tokens for _, _, tokens in fired[last + 1:]):
        return None
    return fired[last][0]


def last_feature_map(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """:func:`spatial_feature_map`, required: a ``ValueError`` when ``module`` has none."""
    layer = spatial_feature_map(module, example)
    if layer is None:
        raise ValueError(f"{type(module).__name__} produces no spatial feature map for an input of "
                         f"{tuple(example.shape)}; Grad-CAM needs a convolutional layer")
    return layer


def grad_cam(forward: Callable[[torch.Tensor], torch.Tensor], layer: nn.Module, images: torch.Tensor,
             target: Sequence[int]) -> torch.Tensor:
    """Grad-CAM heat maps ``[B, H, W]`` in [0, 1] at the size of ``images``, for each row's ``target``."""
    from captum.attr import LayerAttribution, LayerGradCam

    maps = LayerGradCam(forward, layer).attribute(images, target=list(target), relu_attributions=True)
    maps = LayerAttribution.interpolate(maps.detach(), tuple(images.shape[-2:]), interpolate_mode="bilinear")[:, 0]
    peak = maps.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    return (maps / peak).clamp(0, 1)


def saliency(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, target: Sequence[int]) -> torch.Tensor:
    """Absolute input gradients of each row's ``target`` score (same shape as ``inputs``)."""
    from captum.attr import Saliency

    return Saliency(forward).attribute(inputs, target=list(target), abs=True).detach()


def save_heatmap(image: Any, heat: torch.Tensor, path: str | Path, alpha: float = 0.45) -> str:
    """Draw ``heat`` (``[H, W]`` in [0, 1]) over a PIL ``image`` with matplotlib's jet colours; write a PNG."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    from .pictures import save_image

    base = image.convert("RGB")
    heat_image = Image.fromarray(np.uint8(heat.cpu().numpy() * 255)).resize(base.size, Image.BILINEAR)
    colours = colormaps["jet"](np.asarray(heat_image) / 255.0)[..., :3]
    blended = (1 - alpha) * np.asarray(base, dtype=np.float64) / 255 + alpha * colours
    return save_image(Image.fromarray(np.uint8(blended.clip(0, 1) * 255)), path)
