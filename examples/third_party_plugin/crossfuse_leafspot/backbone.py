"""``leaf-cnn``: a small image backbone that also sees the excess-green index of every pixel.

Excess green, ExG = 2g - r - b on chromatic coordinates (r = R / (R + G + B) ...), is the
vegetation index plant imaging has used since Woebbecke et al. (1995) to tell living tissue from
soil and dead tissue: healthy leaf is high, lesions, rust pustules and mildew are low. Handing it
to the first convolution as a fourth channel lets a small network trained from scratch find
lesions with few images. Random init: nothing to download.

A backbone is a ``torch.nn.Module`` with ``modality``, ``feature_dim``, its preprocessing
(``transform`` for images: a PIL image or uint8 tensor ``[3, H, W]`` -> float ``[3, H, W]``) and
``forward(images=[B, 3, H, W]) -> [B, feature_dim]``.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURES = 64


class LeafCNN(nn.Module):
    """Four stride-2 convolution blocks over RGB + ExG, global average pooling: ``[B, 64]`` features."""

    modality = "image"
    feature_dim = FEATURES

    def __init__(self, image_size: int = 96):
        super().__init__()
        from torchvision.transforms import v2

        # Pixels in [0, 1], not ImageNet-normalised: ExG is computed on the colours as they are.
        self.transform = v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), antialias=True),
                                     v2.ToDtype(torch.float32, scale=True)])
        widths = [4, 16, 32, 64, FEATURES]
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            blocks += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([images * 2 - 1, excess_green(images)], dim=1))


def excess_green(images: torch.Tensor) -> torch.Tensor:
    """ExG ``[B, 1, H, W]`` of RGB images ``[B, 3, H, W]`` in [0, 1] (0 for black pixels)."""
    chromatic = images / images.sum(dim=1, keepdim=True).clamp_min(1e-6)
    r, g, b = chromatic.unbind(dim=1)
    return (2 * g - r - b).unsqueeze(1)


def build_leaf_cnn(config) -> LeafCNN:
    """The registry's builder: ``config`` is the run's ``backbone`` section (``image_size``)."""
    return LeafCNN(config.image_size or 96)
