"""Image backbones: torchvision classification models (and a tiny CNN) used as feature extractors."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import BackboneConfig
from ..errors import CrossfuseError
from .hub import ensure_downloadable
from .image_transforms import image_channels, image_pipeline


class ImageBackbone(nn.Module):
    """A network with its classifier removed: images ``[B, C, H, W]`` -> features ``[B, D]``.

    ``body`` is the network (torchvision or timm), ``transform`` the preprocessing that matches its
    weights (a PIL image or uint8 tensor -> float tensor ``[C, H, W]``), ``in_channels`` 3 or 1.
    """

    modality = "image"

    def __init__(self, body: nn.Module, feature_dim: int, transform: nn.Module, arch: str, in_channels: int = 3):
        super().__init__()
        self.body = body
        self.feature_dim = feature_dim
        self.transform = transform
        self.arch = arch
        self.in_channels = in_channels

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


def adapt_first_conv(model: nn.Module, in_channels: int) -> str | None:
    """Make the first RGB convolution of ``model`` take ``in_channels`` (1) channels; return its name.

    The new filter is the sum of the RGB filters (as timm's ``adapt_input_conv`` does): a grey image
    then gives the response the RGB filters give to that grey image in colour, so pretrained weights
    keep their meaning.
    """
    if in_channels == 3:
        return None
    for name, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.in_channels == 3 and conv.groups == 1:
            grey = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                             conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
            with torch.no_grad():
                grey.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
                if conv.bias is not None:
                    grey.bias.copy_(conv.bias)
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, grey)
            return name
    raise CrossfuseError(f"backbone.in_channels={in_channels}: {type(model).__name__} has no 3-channel first "
                         f"convolution to adapt")


def torchvision_builder(arch: str):
    """A registry builder for ``torchvision.models.get_model(arch)`` with its DEFAULT weights."""

    def builder(config: BackboneConfig) -> ImageBackbone:
        from torchvision import models

        weights = models.get_model_weights(arch).DEFAULT
        channels = image_channels(config.in_channels)
        if config.pretrained:
            _ensure_cached(weights.url, arch)
        model = models.get_model(arch, weights=weights if config.pretrained else None)
        body, dim = _strip_classifier(model)
        adapt_first_conv(body, channels)
        preset = weights.transforms()
        size = config.image_size or preset.crop_size[0]
        if channels == 3:  # torchvision's own preset for its weights, as the default runs were measured with
            transform = RGBPreset(weights.transforms(crop_size=size, resize_size=size))
        else:
            transform = image_pipeline(resize=size, crop=size, mean=preset.mean, std=preset.std, channels=channels,
                                       interpolation=preset.interpolation)
        return ImageBackbone(body, dim, transform, arch, channels)

    builder.__doc__ = f"torchvision {arch} (ImageNet weights when pretrained)."
    return builder


class RGBPreset(nn.Module):
    """A torchvision weights preset (resize, crop, normalise) that also takes grey or RGBA pictures.

    RGB PIL images and 3-channel tensors go to the preset unchanged (it resizes PIL images with
    PIL); anything else is made a 3-channel tensor first.
    """

    def __init__(self, preset: nn.Module):
        super().__init__()
        from torchvision.transforms import v2

        from .image_transforms import ToChannels

        self.preset = preset
        self.to_rgb = v2.Compose([v2.ToImage(), ToChannels(3)])

    def forward(self, image: object) -> torch.Tensor:
        is_rgb = getattr(image, "mode", None) == "RGB" or (isinstance(image, torch.Tensor) and image.shape[-3] == 3)
        return self.preset(image if is_rgb else self.to_rgb(image))


def _ensure_cached(url: str, arch: str) -> None:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not cached.is_file():
        ensure_downloadable(url, f"the torchvision weights file for {arch!r}",
                            f"Put {Path(url).name} in {cached.parent}, or set backbone.pretrained=false "
                            f"(random init), or backbone.weights=FILE.")


def build_tiny_cnn(config: BackboneConfig) -> ImageBackbone:
    """A 4-layer CNN with random weights (32-d features), for tests and tiny images."""
    in_channels = image_channels(config.in_channels)
    layers: list[nn.Module] = []
    channels = [in_channels, 16, 32, 32, 32]
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    size = config.image_size or 64
    transform = image_pipeline(resize=(size, size), crop=None, mean=[0.5], std=[0.5], channels=in_channels)
    return ImageBackbone(body, channels[-1], transform, "tiny-cnn", in_channels)
