"""torchvision detectors (Faster R-CNN, RetinaNet, FCOS, SSDlite) on backbones from the core registry.

A registry image backbone is a classification network with its classifier removed. The detector
needs its intermediate feature maps instead: :func:`pyramid_layers` finds, by running a probe
image through the network once, the last layer at each output stride (4, 8, 16, 32 ...), and
:class:`FeaturePyramid` extracts those layers with ``torchvision.models.feature_extraction``
and adds torchvision's Feature Pyramid Network. That works for any CNN in the registry (ResNet,
MobileNet, EfficientNet, the tiny test CNN) without a table of layer names per architecture.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from crossfuse.errors import ConfigError

DETECTORS = ("fcos", "retinanet", "faster_rcnn", "ssdlite")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class DetectorConfig:
    """The ``head`` section of a detection run: which detector and its geometry.

    ``min_size``/``max_size`` are torchvision's resize rule (shorter side to ``min_size``, longer
    side at most ``max_size``); SSDlite resizes to exactly ``max_size`` wide x ``min_size`` high.
    ``anchor_sizes`` (pixels, one list per pyramid level) and ``aspect_ratios`` (height/width)
    apply to the anchor-based detectors (Faster R-CNN, RetinaNet, SSDlite); FCOS is anchor-free.
    """

    detector: str = "fcos"
    strides: list[int] = field(default_factory=lambda: [8, 16, 32])
    fpn_channels: int = 64
    min_size: int = 96
    max_size: int = 320
    anchor_sizes: list[list[float]] = field(default_factory=lambda: [[16, 24], [32, 48], [64, 96]])
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    score_threshold: float = 0.05  # detections kept for evaluation; predict has its own threshold
    nms_threshold: float = 0.5
    detections_per_image: int = 100


def pyramid_layers(body: nn.Module, strides: list[int], probe: int = 128) -> list[tuple[str, int, int]]:
    """``(module name, stride, channels)`` of the last stage producing each requested stride.

    Stages are the modules a network lists in order: the body's children, and the children of
    any ``nn.Sequential`` among them, recursively (``layer2.1`` in a ResNet, ``features.6`` in a
    MobileNet); blocks that are not sequential are kept whole, so a residual addition is never
    cut in half. One ``probe`` x ``probe`` image run through ``body`` (eval mode, no gradients)
    with forward hooks on the stages gives each one's stride and width.
    """
    seen: list[tuple[str, int, int]] = []
    hooks = [module.register_forward_hook(_recorder(name, probe, seen)) for name, module in _stages(body)]
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad():
            body(torch.zeros(1, 3, probe, probe))
    finally:
        body.train(was_training)
        for hook in hooks:
            hook.remove()
    chosen = []
    for stride in strides:
        matches = [entry for entry in seen if entry[1] == stride]
        if not matches:
            available = sorted({s for _, s, _ in seen})
            raise ConfigError(f"head.strides: the backbone has no feature map at stride {stride}; "
                              f"it has strides {available}")
        chosen.append(matches[-1])
    return chosen


def _stages(module: nn.Module, prefix: str = ""):
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if type(child) is nn.Sequential:  # subclasses (Conv2dNormActivation) are blocks
            yield from _stages(child, full + ".")
        else:
            yield full, child


def _recorder(name: str, probe: int, seen: list):
    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] > 0:
            seen.append((name, probe // output.shape[-1], output.shape[1]))
    return hook


class FeaturePyramid(nn.Module):
    """Backbone feature maps at the chosen strides + torchvision FPN; ``out_channels`` as detectors expect."""

    def __init__(self, body: nn.Module, strides: list[int], out_channels: int, extra: str = "pool"):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        layers = pyramid_layers(body, strides)
        self.extractor = create_feature_extractor(body, {name: str(i) for i, (name, _, _) in enumerate(layers)})
        extra_block = LastLevelP6P7(out_channels, out_channels) if extra == "p6p7" else LastLevelMaxPool()
        self.fpn = FeaturePyramidNetwork([c for _, _, c in layers], out_channels, extra_blocks=extra_block)
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features = self.extractor(images)
        return self.fpn(OrderedDict((key, features[key]) for key in sorted(features, key=int)))


def build_detector(backbone: Any, num_classes: int, config: DetectorConfig) -> nn.Module:
    """A torchvision detector for ``num_classes`` object classes (labels 1..num_classes; 0 is background)."""
    if config.detector not in DETECTORS:
        raise ConfigError(f"head.detector: unknown detector {config.detector!r}; choose one of {', '.join(DETECTORS)}")
    if config.detector == "fcos" and config.fpn_channels % 32:
        raise ConfigError(f"head.fpn_channels: FCOS's head normalises in 32 groups, so the channel count must be "
                          f"a multiple of 32, got {config.fpn_channels}")
    body = backbone.body
    common = dict(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    if config.detector == "ssdlite":
        return _ssdlite(body, num_classes, config, common)
    extra = "p6p7" if config.detector in ("retinanet", "fcos") else "pool"
    pyramid = FeaturePyramid(body, config.strides, config.fpn_channels, extra)
    levels = len(config.strides) + (2 if extra == "p6p7" else 1)
    common.update(min_size=config.min_size, max_size=config.max_size)
    if config.detector == "fcos":
        from torchvision.models.detection import FCOS

        return FCOS(pyramid, num_classes + 1, anchor_generator=_fcos_points(config.strides, levels),
                    score_thresh=config.score_threshold, nms_thresh=config.nms_threshold,
                    detections_per_img=config.detections_per_image, **common)
    anchors = _anchor_generator(config, levels)
    if config.detector == "retinanet":
        from torchvision.models.detection import RetinaNet

        return RetinaNet(pyramid, num_classes + 1, anchor_generator=anchors, score_thresh=config.score_threshold,
                         nms_thresh=config.nms_threshold, detections_per_img=config.detections_per_image, **common)
    from torchvision.models.detection import FasterRCNN

    return FasterRCNN(pyramid, num_classes + 1, rpn_anchor_generator=anchors, box_score_thresh=config.score_threshold,
                      box_nms_thresh=config.nms_threshold, box_detections_per_img=config.detections_per_image,
                      **common)


def _fcos_points(strides: list[int], levels: int):
    """FCOS's one "anchor" per location, sized to its level's stride.

    torchvision's FCOS assigns an object to the level whose size range holds its largest
    centre-to-edge distance (4x to 8x the anchor size) and its default generator assumes strides 8
    to 128; sizing the points to the strides actually used keeps that rule right when
    ``head.strides`` starts at 4 (a stride-4 level for objects a few pixels wide).
    """
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = list(strides)
    while len(sizes) < levels:  # P6, P7: each halves the resolution again
        sizes.append(2 * sizes[-1])
    return AnchorGenerator(tuple((float(s),) for s in sizes), ((1.0,),) * levels)


def _anchor_generator(config: DetectorConfig, levels: int):
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = [list(s) for s in config.anchor_sizes]
    if len(sizes) > levels:
        raise ConfigError(f"head.anchor_sizes: {len(sizes)} lists for {levels} pyramid levels")
    while len(sizes) < levels:  # extra levels (P6, P7, pool) continue the doubling
        sizes.append([2 * s for s in sizes[-1]])
    return AnchorGenerator(tuple(tuple(float(v) for v in s) for s in sizes),
                           tuple(tuple(float(r) for r in config.aspect_ratios) for _ in sizes))


def _ssdlite(body: nn.Module, num_classes: int, config: DetectorConfig, common: dict) -> nn.Module:
    from functools import partial

    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead

    pyramid = FeaturePyramid(body, config.strides, config.fpn_channels, "pool")
    levels = len(config.strides) + 1
    ratios = sorted({r for r in config.aspect_ratios if r >= 1.0} - {1.0}) or [2.0]
    anchors = DefaultBoxGenerator([ratios] * levels, min_ratio=0.1, max_ratio=0.9)
    head = SSDLiteHead([config.fpn_channels] * levels, anchors.num_anchors_per_location(), num_classes + 1,
                       partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
    return SSD(pyramid, anchors, (config.max_size, config.min_size), num_classes + 1, head=head,
               score_thresh=config.score_threshold, nms_thresh=config.nms_threshold,
               detections_per_img=config.detections_per_image, **common)
