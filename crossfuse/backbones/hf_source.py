"""Hugging Face sources (``hf:ORG/NAME`` or a local folder): which modality a model is, and loading it.

The modality comes from the model's own ``config.json``: its ``model_type`` is looked up in the
task mappings transformers keeps (audio classification, CTC, speech-to-text; image
classification, image feature extraction); anything else is a text encoder.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from ..config import BackboneConfig
from ..errors import ConfigError, CrossfuseError
from .hub import cached_hub_file, download_hint, hub_options

# Names of the transformers mappings (transformers.models.auto.modeling_auto) that mark a modality.
AUDIO_MAPPINGS = ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "MODEL_FOR_CTC_MAPPING_NAMES",
                  "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "MODEL_FOR_AUDIO_XVECTOR_MAPPING_NAMES",
                  "MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES")
IMAGE_MAPPINGS = ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "MODEL_FOR_IMAGE_MAPPING_NAMES")


def model_type_modality(model_type: str | None) -> str:
    """``"audio"``, ``"image"`` or ``"text"`` for a transformers ``model_type`` (unknown types are text)."""
    from transformers.models.auto import modeling_auto

    for modality, mappings in (("audio", AUDIO_MAPPINGS), ("image", IMAGE_MAPPINGS)):
        if any(model_type in getattr(modeling_auto, name, {}) for name in mappings):
            return modality
    return "text"


def config_file_modality(path: str | Path) -> str:
    """The modality of the model a ``config.json`` file describes."""
    try:
        model_type = json.loads(Path(path).read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise CrossfuseError(f"{path}: cannot read the model config ({exc}); expected a Hugging Face config.json") \
            from None
    return model_type_modality(model_type)


def hf_source_modality(source: str, from_hub: bool) -> str | None:
    """The modality of a Hub repo (from its cached config) or a local folder; None when it is not known here."""
    config_file = cached_hub_file(source, "config.json") if from_hub else Path(source) / "config.json"
    if config_file is None or not Path(config_file).is_file():
        return None
    return config_file_modality(config_file)


def load_hf_config(source: str, config: BackboneConfig, from_hub: bool) -> tuple[Any, dict[str, Any]]:
    """The transformers config of ``source`` and the ``from_pretrained`` options that go with it."""
    from transformers import AutoConfig

    options: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if from_hub:
        options.update(hub_options(source))
    elif not (Path(source) / "config.json").is_file():
        raise CrossfuseError(f"backbone directory {source!r} has no config.json: expected a Hugging Face model "
                             f"folder (save_pretrained output with config.json, its tokenizer or processor files "
                             f"and weights)")
    try:
        hf_config = AutoConfig.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise CrossfuseError(f"could not read the model config of {source!r}: {exc}"
                             + (f" {download_hint(source)}" if from_hub else "")) from None
    if config.layers is not None:
        keep_first_layers(hf_config, config.layers, source)
    return hf_config, options


def keep_first_layers(hf_config: Any, layers: int, source: str) -> None:
    """``backbone.layers``: the model is built with its first ``layers`` layers, whose pretrained weights
    load as they are (the rest of the checkpoint is left out): a shallower student that starts from the
    teacher's own lower layers, as DistilBERT's did from every other layer."""
    total = getattr(hf_config, "num_hidden_layers", None)
    if not isinstance(total, int):
        raise ConfigError(f"backbone.layers: the config of {source!r} names no num_hidden_layers; only layered "
                          f"transformer models can keep their first N layers")
    if not 1 <= layers <= total:
        raise ConfigError(f"backbone.layers must be between 1 and {total} (the layers of {source!r}), got {layers}")
    hf_config.num_hidden_layers = layers


def load_hf_model(source: str, hf_config: Any, config: BackboneConfig, options: dict[str, Any],
                  model_class: Any = None) -> Any:
    """``model_class`` (default ``AutoModel``) from ``source``: pretrained weights, or random init from the config."""
    import torch
    from transformers import AutoModel

    model_class = model_class or AutoModel
    try:
        if config.pretrained:
            # transformers 5 keeps a checkpoint's dtype (often bf16); training expects float32 parameters.
            with _quiet_about_dropped_layers(config.layers, source):
                return model_class.from_pretrained(source, config=hf_config, dtype=torch.float32, **options)
        if model_class is AutoModel:
            return AutoModel.from_config(hf_config, trust_remote_code=config.trust_remote_code)
        return model_class(hf_config)
    except (OSError, ValueError) as exc:
        raise CrossfuseError(f"could not load the model weights of {source!r}: {reason(exc)}. "
                             f"{files_hint(source, 'the weights')} Or set backbone.pretrained=false to start from "
                             f"random weights.") from None


@contextlib.contextmanager
def _quiet_about_dropped_layers(layers: int | None, source: str) -> Iterator[None]:
    """With ``backbone.layers``, the checkpoint's upper layers are left out on purpose: one line says so
    instead of transformers' table of every "unexpected" tensor."""
    if layers is None:
        yield
        return
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
    print(f"backbone.layers={layers}: the first {layers} layers of {source} loaded; the rest of its checkpoint is "
          f"left out", file=sys.stderr)


def reason(exc: Exception) -> str:
    """An exception's message without its final full stop, to continue the sentence."""
    return str(exc).strip().rstrip(".")


def files_hint(source: str, files: str) -> str:
    """What to do when ``files`` (e.g. "the tokenizer") of ``source`` cannot be loaded."""
    if Path(source).is_dir():
        return f"Save {files} into the folder too (save_pretrained), next to config.json."
    return download_hint(source)


def build_hf(source: str, config: BackboneConfig, from_hub: bool) -> Any:
    """A text, image or audio backbone from a Hub repo or a local folder, chosen by the model's config."""
    hf_config, options = load_hf_config(source, config, from_hub)
    modality = model_type_modality(getattr(hf_config, "model_type", None))
    if modality == "image":
        from .vision_hf import build_hf_image

        return build_hf_image(source, config, hf_config, options)
    if modality == "audio":
        from .audio_hf import build_hf_audio

        return build_hf_audio(source, config, hf_config, options)
    from .text import build_text_from

    return build_text_from(source, config, hf_config, options)
