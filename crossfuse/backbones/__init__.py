"""Backbones: registry entries, sources (registry name, ``hf:ORG/NAME``, local path) and building.

A built backbone is a ``torch.nn.Module`` with two attributes every head relies on:

- ``modality``: ``"text"``, ``"image"`` or ``"audio"``;
- ``feature_dim``: the size of the pooled feature vector ``forward`` returns, shape ``[B, D]``;

and a modality-specific preprocessing method (``tokenize`` for text, ``transform`` for images,
``featurize`` for audio) that tasks call in their collate functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import BackboneConfig
from ..errors import CrossfuseError


def resolve_source(name: str) -> tuple[str, str | None]:
    """Classify a backbone name: ``("hf", repo)``, ``("local", path)`` or ``("registry", name)``."""
    if name.startswith("hf:"):
        repo = name[3:]
        if not repo:
            raise CrossfuseError("backbone 'hf:' needs a model id, for example hf:bert-base-chinese")
        return "hf", repo
    if "/" in name or name.startswith(".") or Path(name).expanduser().exists():
        path = Path(name).expanduser()
        if not path.exists():
            raise CrossfuseError(f"backbone path {name!r} does not exist. Give a registry name "
                                 f"(see `crossfuse list backbones`), hf:ORG/NAME, or an existing directory")
        return "local", str(path)
    return "registry", name


def build_backbone(config: BackboneConfig | dict[str, Any] | str, **overrides: Any):
    """Build a backbone from a config, a dict of config keys, or just a name.

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
    kind, where = resolve_source(config.name)
    if kind in ("hf", "local"):
        from .text import build_hf_text

        backbone = build_hf_text(where, config, from_hub=(kind == "hf"))
    else:
        from ..plugins import get_plugin_manager

        builder = get_plugin_manager().backbones.get(config.name).load()
        backbone = builder(config)
    if config.weights:
        load_weights(backbone, config.weights)
    if config.freeze:
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
    return backbone


def load_weights(module: Any, path: str) -> None:
    """Load a local ``.safetensors`` (or ``.pt``/``.pth`` state dict, read with ``weights_only=True``) file."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise CrossfuseError(f"backbone.weights: file {path!r} does not exist")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        try:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - pickle errors come in many types
            raise CrossfuseError(f"backbone.weights: {path!r} is not a plain state dict ({exc})") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, unexpected = module.load_state_dict(state, strict=False)
    loaded = len(state) - len(unexpected)
    if loaded == 0:
        raise CrossfuseError(f"backbone.weights: no tensor in {path!r} matches the backbone's parameter names "
                             f"(first expected: {sorted(module.state_dict())[:3]})")
