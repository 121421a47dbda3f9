"""Image backbones: torchvision classification models (and narrow ResNets, a tiny CNN) used as feature extractors."""

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


def narrow_resnet_builder(width: int):
    """A registry builder for ResNet-18's layout of torchvision's basic blocks with ``width`` channels
    in its stem and first stage, doubling per stage, from random init: no pretrained weights fit the
    narrower shape.

    At half width (32) ResNet-18 costs a quarter of the compute, and on small images trained from
    scratch it learns more in the same time than the full width (plugins/crossfuse_face/README.md).
    """

    def builder(config: BackboneConfig) -> ImageBackbone:
        from torchvision.models import ResNet18_Weights

        arch = f"resnet18-w{width}"
        if config.pretrained:
            raise CrossfuseError(f"backbone {arch} has no pretrained weights: set backbone.pretrained=false "
                                 f"(random init, or your own backbone.weights=FILE)")
        channels = image_channels(config.in_channels)
        body = NarrowResNet(channels, width)
        size = config.image_size or 224
        preset = ResNet18_Weights.DEFAULT.transforms()  # the statistics of the full-width ResNet-18
        transform = image_pipeline(resize=size, crop=size, mean=preset.mean, std=preset.std, channels=channels)
        return ImageBackbone(body, body.feature_dim, transform, arch, channels)

    builder.__doc__ = f"ResNet-18 at width {width}, random init."
    return builder


class NarrowResNet(nn.Module):
    """torchvision's ResNet layout and names (``conv1``, ``bn1``, ``maxpool``, ``layer1`` ... of
    :class:`BasicBlock`) at any width: torchvision's ``ResNet`` fixes basic blocks at width 64.
    ``forward`` gives the average-pooled features of the last stage."""

    def __init__(self, in_channels: int, width: int, blocks: tuple[int, ...] = (2, 2, 2, 2)):
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        planes_in = width
        for stage, count in enumerate(blocks):
            planes, stride = width * 2**stage, 1 if stage == 0 else 2
            shortcut = None
            if stride != 1 or planes_in != planes:
                shortcut = nn.Sequential(nn.Conv2d(planes_in, planes, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(planes))
            layer = [BasicBlock(planes_in, planes, stride, shortcut)] + [BasicBlock(planes, planes)
                                                                         for _ in range(count - 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
            planes_in = planes
        self.stages = len(blocks)
        self.feature_dim = planes_in
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        for stage in range(self.stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


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
