"""Image preprocessing as torchvision v2 pipelines, one builder for torchvision, timm and transformers models.

Every pipeline takes a PIL image or a uint8 tensor ``[C, H, W]`` (grey, RGB or RGBA) and returns the
float tensor ``[channels, H', W']`` the model takes. Images become tensors first, so a PIL image and
the same pixels as a tensor give the same result.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from ..errors import CrossfuseError

# PIL resampling codes (what processors and timm store) -> torchvision modes. Tensors cannot be resized
# with Lanczos, box or Hamming filters; transformers falls back to bicubic for them as well.
_RESAMPLE = {0: InterpolationMode.NEAREST, 1: InterpolationMode.BICUBIC, 2: InterpolationMode.BILINEAR,
             3: InterpolationMode.BICUBIC, 4: InterpolationMode.BICUBIC, 5: InterpolationMode.BICUBIC}


def image_channels(in_channels: int | None) -> int:
    """The channel count a backbone takes: 3 by default, 1 for grey-scale."""
    if in_channels in (None, 3):
        return 3
    if in_channels == 1:
        return 1
    raise CrossfuseError(f"backbone.in_channels must be 1 (grey-scale) or 3 (RGB), got {in_channels!r}")


def interpolation_mode(value: object) -> InterpolationMode:
    """A torchvision interpolation mode from a PIL code, a mode, or a name such as ``"bicubic"``."""
    if isinstance(value, InterpolationMode):
        return value
    if isinstance(value, str):
        return InterpolationMode(value.lower())
    return _RESAMPLE.get(int(value), InterpolationMode.BILINEAR)  # type: ignore[call-overload]


class ToChannels(nn.Module):
    """Give an image tensor ``channels`` channels: drop alpha, then grey -> RGB or RGB -> grey."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-3] == 4:
            image = image[..., :3, :, :]
        if self.channels == 1 and image.shape[-3] == 3:
            return F.rgb_to_grayscale(image)
        if self.channels == 3 and image.shape[-3] == 1:
            return F.grayscale_to_rgb(image)
        return image

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def image_pipeline(*, resize: int | Sequence[int] | None, crop: int | Sequence[int] | None,
                   mean: Sequence[float] | None, std: Sequence[float] | None, channels: int = 3,
                   interpolation: object = InterpolationMode.BILINEAR, rescale: float = 1 / 255) -> v2.Compose:
    """A v2 pipeline: to tensor, to ``channels``, resize (an int sets the shorter side), centre crop, scale, normalise.

    With ``channels=1`` and RGB statistics, the grey image is normalised with the mean of each.
    """
    steps: list[nn.Module] = [v2.ToImage(), ToChannels(channels)]
    if resize is not None:
        size = [resize] if isinstance(resize, int) else list(resize)
        steps.append(v2.Resize(size, interpolation=interpolation_mode(interpolation), antialias=True))
    if crop is not None:
        steps.append(v2.CenterCrop(crop))
    if abs(rescale - 1 / 255) < 1e-12:
        steps.append(v2.ToDtype(torch.float32, scale=True))
    else:  # an unusual rescale factor: multiply by it exactly
        steps += [v2.ToDtype(torch.float32, scale=False), v2.Normalize([0.0] * channels, [1 / rescale] * channels)]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(_per_channel(mean, channels), _per_channel(std, channels)))
    return v2.Compose(steps)


def _per_channel(values: Sequence[float] | float, channels: int) -> list[float]:
    values = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if len(values) == channels:
        return values
    if channels == 1:
        return [sum(values) / len(values)]
    return values[:1] * channels
