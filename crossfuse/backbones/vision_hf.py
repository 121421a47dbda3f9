"""Image backbones from transformers (ViT, ConvNeXt, DINOv2, Swin, CLIP's vision tower ...).

The model comes through ``AutoModel``, its preprocessing from ``AutoImageProcessor``: the processor's
resize, crop, rescale and normalisation settings become a torchvision v2 pipeline that gives the
same tensors the processor would.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import BackboneConfig
from ..errors import CrossfuseError
from .hf_source import files_hint, load_hf_model, reason
from .image_transforms import image_pipeline


class HFImageBackbone(nn.Module):
    """A transformers vision model: images ``[B, 3, H, W]`` -> features ``[B, D]``.

    Pooling: the model's ``pooler_output`` when it is one vector per image, else the [CLS] token
    for ViT-like models, else the mean over positions.
    """

    modality = "image"
    in_channels = 3

    def __init__(self, model: nn.Module, processor: Any, hf_config: Any, image_size: int | None = None):
        super().__init__()
        self.model = model
        self.processor = processor
        self.hf_config = hf_config  # the config it was built from (for CLIP-like models, the whole one)
        self.transform = processor_transform(processor, image_size)
        self.has_cls = getattr(getattr(model, "embeddings", None), "cls_token", None) is not None
        native = _native_size(model.config)
        self._interpolate = (image_size is not None and native is not None and image_size != native
                             and "interpolate_pos_encoding" in inspect.signature(model.forward).parameters)
        self.feature_dim = _feature_dim(model, self.transform)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        options = {"interpolate_pos_encoding": True} if self._interpolate else {}
        return self.pool(self.model(pixel_values=images, **options))

    def pool(self, output: Any) -> torch.Tensor:
        """One vector per image from a transformers model output."""
        pooled = getattr(output, "pooler_output", None)
        if pooled is not None and pooled.dim() == 2:
            return pooled
        hidden = output.last_hidden_state
        if hidden.dim() == 4:  # convolutional feature map [B, C, H, W]
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0] if self.has_cls else hidden.mean(dim=1)

    def save_architecture(self, directory: str | Path) -> None:
        """Write the model config and the image processor (no weights) so a run can be rebuilt offline."""
        self.hf_config.save_pretrained(str(directory))
        self.processor.save_pretrained(str(directory))


def build_hf_image(source: str, config: BackboneConfig, hf_config: Any, options: dict[str, Any]) -> HFImageBackbone:
    """The image backbone of ``source`` once its config is read (see :func:`~.hf_source.load_hf_config`)."""
    from transformers import AutoImageProcessor

    if config.in_channels not in (None, 3):
        raise CrossfuseError(f"backbone.in_channels={config.in_channels}: transformers image models take RGB. "
                             f"Leave it unset (grey images are made RGB by the transform), or use a torchvision "
                             f"or timm: backbone, which adapts its first convolution.")
    try:
        processor = AutoImageProcessor.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise CrossfuseError(f"could not load the image processor of {source!r}: {reason(exc)}. "
                             f"{files_hint(source, 'the image processor')}") from None
    vision_config = getattr(hf_config, "vision_config", None)
    if vision_config is not None:  # CLIP, SigLIP ...: keep the vision tower only
        from transformers import MODEL_MAPPING

        model = load_hf_model(source, vision_config, config, options, MODEL_MAPPING[type(vision_config)])
    else:
        model = load_hf_model(source, hf_config, config, options)
    return HFImageBackbone(model, processor, hf_config, config.image_size)


def processor_transform(processor: Any, image_size: int | None = None):
    """The processor's preprocessing as a v2 pipeline; the processor itself where its settings are unusual.

    ``image_size`` replaces the final size, the resize step scaled with it.
    """
    plan = _resize_plan(processor)
    if plan is None:
        if image_size:
            raise CrossfuseError(f"backbone.image_size: {type(processor).__name__} resizes in a way crossfuse does "
                                 f"not translate; leave image_size unset for this model")
        return ProcessorTransform(processor)
    resize, crop = plan
    if image_size:
        final = crop or resize
        final_side = final if isinstance(final, int) else min(final)
        resize = _scale(resize, image_size / final_side)
        crop = image_size
    return image_pipeline(resize=resize, crop=crop,
                          mean=processor.image_mean if processor.do_normalize else None,
                          std=processor.image_std if processor.do_normalize else None,
                          interpolation=processor.resample or 2,
                          rescale=processor.rescale_factor if processor.do_rescale else 1.0)


class ProcessorTransform:
    """Call an image processor on one image (for processors whose steps have no v2 equivalent here)."""

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, image: Any) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


def _resize_plan(processor: Any) -> tuple[Any, Any] | None:
    """(resize, crop) as ``image_pipeline`` takes them, or None when the processor does something else."""
    if getattr(processor, "do_pad", False) or not hasattr(processor, "image_mean"):
        return None
    crop = None
    if getattr(processor, "do_center_crop", False):
        crop = (_get(processor.crop_size, "height"), _get(processor.crop_size, "width"))
    if not getattr(processor, "do_resize", True):
        return None, crop
    size = processor.size
    height, width, shortest = _get(size, "height"), _get(size, "width"), _get(size, "shortest_edge")
    crop_pct = getattr(processor, "crop_pct", None)
    if shortest and crop_pct and crop is None and not _get(size, "longest_edge"):
        # ConvNeXt: below 384 px, resize to shortest/crop_pct and crop; from 384 px, warp to a square.
        return (int(shortest / crop_pct), shortest) if shortest < 384 else ((shortest, shortest), None)
    if height and width:
        return (height, width), crop
    if shortest and not _get(size, "longest_edge"):
        return shortest, crop
    return None


def _get(size: Any, key: str) -> Any:
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _scale(resize: Any, factor: float) -> Any:
    if isinstance(resize, int):
        return round(resize * factor)
    return tuple(round(side * factor) for side in resize)


def _native_size(model_config: Any) -> int | None:
    size = getattr(model_config, "image_size", None)
    return size if isinstance(size, int) else None


def _feature_dim(model: nn.Module, transform: Any) -> int:
    """The pooled size, from the config when it says (hidden_size / hidden_sizes), else by one dry run."""
    config = model.config
    if getattr(config, "hidden_size", None):
        return int(config.hidden_size)
    if getattr(config, "hidden_sizes", None):
        return int(config.hidden_sizes[-1])
    image = transform(torch.zeros(3, 64, 64, dtype=torch.uint8)).unsqueeze(0)
    was_training = model.training
    with torch.no_grad():
        output = model.eval()(pixel_values=image)
    model.train(was_training)
    pooled = getattr(output, "pooler_output", None)
    hidden = pooled if pooled is not None and pooled.dim() == 2 else output.last_hidden_state
    return int(hidden.shape[1] if hidden.dim() == 4 else hidden.shape[-1])
