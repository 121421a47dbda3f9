"""Training-time image augmentation on torchvision transforms v2, configured from a task's YAML.

A task puts an :class:`ImageAugment` (or a subclass with its own defaults) under ``data.augment``
and builds the pipeline once with :func:`image_augmentation`; it applies it in
:meth:`~crossfuse.task.Task.preprocess` when ``train`` is true. With ``boxes=True`` the pipeline
takes and returns ``{"image", "boxes", "labels"}`` dicts (``tv_tensors.BoundingBoxes``): boxes
move with the pixels, and those pushed out of the image are dropped with their labels.

Steps run in a fixed order (flips, crop, colour, affine); each is off at its neutral value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass
class ImageAugment:
    """Random training augmentation; every step is off at its default."""

    hflip: float = 0.0  # probability of a left-right flip (off for anatomy, text, asymmetric scenes)
    vflip: float = 0.0  # probability of an upside-down flip
    crop_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # random crop area, resized back
    color_jitter: float = 0.0  # brightness / contrast / saturation strength
    rotation: float = 0.0  # degrees, either way
    translate: float = 0.0  # shift, as a fraction of the image size
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # zoom range


def image_augmentation(config: ImageAugment, boxes: bool = False, min_box_size: float = 1.0) -> Any:
    """The v2 pipeline for ``config``, or None when every step is off."""
    from torchvision.transforms import v2

    steps: list[Any] = []
    if config.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(config.hflip))
    if config.vflip > 0:
        steps.append(v2.RandomVerticalFlip(config.vflip))
    if tuple(config.crop_scale) != (1.0, 1.0):
        if boxes:
            raise ConfigError("data.augment.crop_scale is not available with boxes; zoom with data.augment.scale")
        low, high = _range(config.crop_scale, "crop_scale", upper=1.0)
        steps.append(SameSizeCrop(low, high))
    if config.color_jitter > 0:
        strength = config.color_jitter
        steps.append(v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength))
    if config.rotation or config.translate or tuple(config.scale) != (1.0, 1.0):
        steps.append(v2.RandomAffine(degrees=config.rotation, translate=(config.translate, config.translate),
                                     scale=_range(config.scale, "scale")))
    if not steps:
        return None
    if boxes:
        steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=min_box_size)]
    return v2.Compose(steps)


def _range(values: list[float], key: str, upper: float | None = None) -> tuple[float, float]:
    if len(values) != 2 or not 0 < values[0] <= values[1] or (upper is not None and values[1] > upper):
        limit = f" <= {upper}" if upper is not None else ""
        raise ConfigError(f"data.augment.{key} must be [low, high] with 0 < low <= high{limit}, got {values}")
    return float(values[0]), float(values[1])


class SameSizeCrop:
    """A random crop covering ``low``..``high`` of the area (aspect 0.9..1.1), resized back to the
    input's own size (the backbone's transform resizes afterwards). Takes PIL images or tensors."""

    def __init__(self, low: float, high: float):
        self.scale = (low, high)

    def __call__(self, image: Any) -> Any:
        from torchvision.transforms import v2

        size = (image.height, image.width) if hasattr(image, "height") else tuple(image.shape[-2:])
        return v2.RandomResizedCrop(size, scale=self.scale, ratio=(0.9, 1.1), antialias=True)(image)
