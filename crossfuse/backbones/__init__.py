"""Backbones: registry entries, sources and building.

Sources: a registry name (``crossfuse list backbones``), ``hf:ORG/NAME`` (the Hugging Face Hub),
``timm:NAME`` (any timm image model), or a local folder in Hugging Face layout (``config.json``
plus tokenizer or processor files). A Hugging Face model's own config says whether it is a text,
image or audio backbone.

A built backbone is a ``torch.nn.Module`` with two attributes every head relies on:

- ``modality``: ``"text"``, ``"image"`` or ``"audio"``;
- ``feature_dim``: the size of the pooled feature vector ``forward`` returns, shape ``[B, D]``;

and a modality-specific preprocessing step that tasks call in their collate functions:
``tokenize`` for text, ``transform`` for images, ``featurize`` for audio (see
:mod:`crossfuse.backbones.audio` for the audio interface).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import BackboneConfig
from ..errors import ConfigError, CrossfuseError
from .weights import WeightsReport, load_weights

__all__ = ["WeightsReport", "build_backbone", "load_weights", "resolve_source", "source_modality"]

_PREFIXES = {"hf:": ("hf", "hf:bert-base-chinese"), "timm:": ("timm", "timm:convnext_tiny")}


def resolve_source(name: str) -> tuple[str, str | None]:
    """Classify a backbone name: ``("hf", repo)``, ``("timm", model)``, ``("local", path)`` or ``("registry", name)``."""
    for prefix, (kind, example) in _PREFIXES.items():
        if name.startswith(prefix):
            if not name[len(prefix):]:
                raise CrossfuseError(f"backbone {prefix!r} needs a model name, for example {example}")
            return kind, name[len(prefix):]
    if "/" in name or name.startswith(".") or Path(name).expanduser().exists():
        path = Path(name).expanduser()
        if not path.exists():
            raise CrossfuseError(f"backbone path {name!r} does not exist. Give a registry name (see `crossfuse list "
                                 f"backbones`), hf:ORG/NAME, timm:NAME, or an existing directory")
        return "local", str(path)
    return "registry", name


def source_modality(name: str) -> str | None:
    """The modality a backbone name will build, without building it; None when that is not known here.

    Registry names answer from their entry, ``timm:`` names are images, local folders and cached
    ``hf:`` models from their ``config.json``; an ``hf:`` model not in the local cache gives None.
    """
    kind, where = resolve_source(name)
    if kind == "registry":
        from ..plugins import get_plugin_manager

        return get_plugin_manager().backbones.get(name).meta.get("modality")
    if kind == "timm":
        return "image"
    from .hf_source import hf_source_modality

    return hf_source_modality(str(where), from_hub=(kind == "hf"))


def build_backbone(config: BackboneConfig | dict[str, Any] | str, *, adapt: bool = True, **overrides: Any):
    """Build a backbone from a config, a dict of config keys, or just a name.

    With ``backbone.weights``, the backbone's ``weights_report`` attribute holds the
    :class:`WeightsReport` of that file. With ``adapt`` (the default), ``freeze``, ``train_blocks``,
    ``lora`` and ``gradient_checkpointing`` are applied last (:func:`~.adapt.adapt_backbone`); a caller
    that loads more weights first (``init_from``) passes ``adapt=False`` and adapts afterwards.

    >>> backbone = build_backbone("tiny-bert")              # doctest: +SKIP
    >>> backbone(**backbone.tokenize(["Profit rose"])).shape  # doctest: +SKIP
    torch.Size([1, 64])
    """
    from ..config import build

    if isinstance(config, str):
        config = BackboneConfig(name=config)
    elif isinstance(config, dict):
        config = build(BackboneConfig, config, prefix="backbone.")
    for key, value in overrides.items():
        setattr(config, key, value)
    backbone = _build_source(config)
    if config.layers is not None and _layer_count(backbone) != config.layers:
        raise ConfigError(f"backbone.layers={config.layers}: {config.name!r} is not a Hugging Face transformer "
                          f"backbone (hf:ORG/NAME, a local folder, or a registry name that loads one); drop the key")
    if config.weights:
        backbone.weights_report = load_weights(backbone, config.weights)
    if adapt:
        from .adapt import adapt_backbone

        adapt_backbone(backbone, config)
    return backbone


def _layer_count(backbone: Any) -> int | None:
    """The ``num_hidden_layers`` of a transformers backbone's model config, None for other backbones."""
    return getattr(getattr(getattr(backbone, "model", None), "config", None), "num_hidden_layers", None)


def _build_source(config: BackboneConfig) -> Any:
    kind, where = resolve_source(config.name)
    if kind == "timm":
        from .vision_timm import build_timm

        return build_timm(str(where), config)
    if kind in ("hf", "local"):
        from .hf_source import build_hf

        return build_hf(str(where), config, from_hub=(kind == "hf"))
    from ..plugins import get_plugin_manager

    return get_plugin_manager().backbones.get(config.name).load()(config)
