"""``timm:NAME`` image backbones: any timm model without its classifier, with timm's own preprocessing."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from ..config import BackboneConfig
from ..errors import CrossfuseError
from .hub import cached_hub_file, ensure_downloadable, hub_endpoint
from .image_transforms import image_channels, image_pipeline
from .vision import ImageBackbone

# Files timm looks for in a Hub repo, safest first (timm.models._hub: HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME).
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def build_timm(name: str, config: BackboneConfig) -> ImageBackbone:
    """``timm.create_model(name, num_classes=0)``: pooled features of ``num_features`` dimensions."""
    timm = _import_timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise CrossfuseError(f"timm has no model {name!r}.{hint} See timm.list_models() for the names.")
    channels = image_channels(config.in_channels)
    options: dict[str, Any] = {}
    if config.pretrained:
        options["pretrained_cfg_overlay"] = _local_weights(name)
    model = timm.create_model(name, pretrained=config.pretrained, num_classes=0, in_chans=channels, **options)
    return ImageBackbone(model, int(model.num_features), timm_transform(model, channels, config.image_size),
                         f"timm:{name}", channels)


def timm_transform(model: Any, channels: int, image_size: int | None = None):
    """timm's evaluation preprocessing for ``model`` (``resolve_model_data_config``) as a v2 pipeline."""
    import timm.data

    data = timm.data.resolve_model_data_config(model)
    height, width = data["input_size"][-2:]
    if image_size:
        height = width = image_size
    crop_pct = data.get("crop_pct") or 0.875
    scaled = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    if data.get("crop_mode") == "squash":  # both sides to the scaled size, then crop
        resize: int | tuple[int, int] = scaled
    else:  # "center" (and "border", approximated): shorter side to the scaled size, then crop
        resize = scaled[0] if scaled[0] == scaled[1] else scaled
    return image_pipeline(resize=resize, crop=(height, width), mean=data["mean"], std=data["std"], channels=channels,
                          interpolation=data.get("interpolation", "bicubic"))


def _import_timm():
    try:
        import timm
    except ImportError:
        raise CrossfuseError("timm: backbones need the timm package: pip install timm") from None
    return timm


def _local_weights(name: str) -> dict[str, Any]:
    """A ``pretrained_cfg_overlay`` pointing timm at cached weights; fail fast when they would need a download.

    timm fetches weights from the Hugging Face Hub (or a URL) and would retry for a long time
    without a network; looking in the caches first keeps an offline machine working and quick.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise CrossfuseError(f"timm model {name!r} has no pretrained weights; set backbone.pretrained=false")
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in ((cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES):
            path = cached_hub_file(repo, filename, revision=revision or None)
            if path and cfg.custom_load != "hf":
                # Hub files hold plain timm state dicts: load them as a file, with timm's usual adaptation.
                return {"file": path, "source": "", "custom_load": False}
            if path:
                return {}
        filename = cfg.hf_hub_filename or _HUB_WEIGHT_FILES[0]
        ensure_downloadable(hub_endpoint(), f"timm weights for {name!r} ({cfg.hf_hub_id})",
                            f"Download them where there is a network (`hf download {repo} {filename} "
                            f"--local-dir DIR`), copy the file here and set backbone.weights=FILE with "
                            f"backbone.pretrained=false; or train from random init (backbone.pretrained=false).")
        return {}
    if cfg.url:
        import torch

        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if not cached.is_file():
            ensure_downloadable(cfg.url, f"timm weights for {name!r}",
                                f"Put {cached.name} in {cached.parent}, or set backbone.pretrained=false.")
        return {}
    raise CrossfuseError(f"timm model {name!r} has no downloadable pretrained weights; set backbone.pretrained=false")
