"""Image backbones: torchvision classification models used as feature extractors."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import BackboneConfig
from ..errors import CrossfuseError
from .hub import ensure_downloadable


class ImageBackbone(nn.Module):
    """A torchvision network with its classifier removed: images ``[B, 3, H, W]`` -> features ``[B, D]``.

    ``transform`` holds the preprocessing that matches the weights (resize, crop, normalise).
    """

    modality = "image"

    def __init__(self, body: nn.Module, feature_dim: int, transform: nn.Module, arch: str):
        super().__init__()
        self.body = body
        self.feature_dim = feature_dim
        self.transform = transform
        self.arch = arch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def _strip_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace the final classification layer by identity and return its input size."""
    for attr in ("fc", "classifier", "head", "heads"):
        layer = getattr(model, attr, None)
        if layer is None:
            continue
        linear = layer if isinstance(layer, nn.Linear) else [m for m in layer.modules() if isinstance(m, nn.Linear)][-1]
        if isinstance(layer, nn.Linear):
            setattr(model, attr, nn.Identity())
        else:  # keep pooling/dropout stages, drop only the last linear layer
            parent = layer
            index = [i for i, m in enumerate(parent) if m is linear][0]
            parent[index] = nn.Identity()
        return model, linear.in_features
    raise CrossfuseError(f"cannot find the classifier of {type(model).__name__} to turn it into a backbone")


def torchvision_builder(arch: str):
    """A registry builder for ``torchvision.models.get_model(arch)`` with its DEFAULT weights."""

    def builder(config: BackboneConfig) -> ImageBackbone:
        from torchvision import models

        weights = models.get_model_weights(arch).DEFAULT
        if config.pretrained:
            _ensure_cached(weights.url, arch)
        model = models.get_model(arch, weights=weights if config.pretrained else None)
        body, dim = _strip_classifier(model)
        size = config.image_size or weights.transforms().crop_size[0]
        transform = weights.transforms(crop_size=size, resize_size=size)
        return ImageBackbone(body, dim, transform, arch)

    builder.__doc__ = f"torchvision {arch} (ImageNet weights when pretrained)."
    return builder


def _ensure_cached(url: str, arch: str) -> None:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not cached.is_file():
        ensure_downloadable(url, f"the torchvision weights file for {arch!r}",
                            f"Put {Path(url).name} in {cached.parent}, or set backbone.pretrained=false "
                            f"(random init), or backbone.weights=FILE.")


def build_tiny_cnn(config: BackboneConfig) -> ImageBackbone:
    """A 4-layer CNN with random weights (32-d features), for tests and tiny images."""
    from torchvision.transforms import v2

    layers: list[nn.Module] = []
    channels = [3, 16, 32, 32, 32]
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    size = config.image_size or 64
    transform = v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.5] * 3, [0.5] * 3)])
    return ImageBackbone(body, channels[-1], transform, "tiny-cnn")
