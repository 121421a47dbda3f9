"""Detectors on registry backbones, and the box-aware augmentation."""

from __future__ import annotations

import math

import pytest
import torch

from crossfuse.augment import image_augmentation
from crossfuse.backbones import build_backbone
from crossfuse.errors import ConfigError
from crossfuse_driving.detectors import DETECTORS, DetectorConfig, build_detector, pyramid_layers
from crossfuse_driving.task import AugmentConfig


def test_pyramid_layers_follow_the_network():
    resnet = build_backbone("resnet18", pretrained=False)
    assert pyramid_layers(resnet.body, [8, 16, 32]) == [("layer2.1", 8, 128), ("layer3.1", 16, 256),
                                                        ("layer4.1", 32, 512)]
    mobilenet = build_backbone("mobilenet_v3_small", pretrained=False)
    assert [stride for _, stride, _ in pyramid_layers(mobilenet.body, [8, 16, 32])] == [8, 16, 32]


def test_a_stride_the_backbone_lacks_is_a_config_error():
    tiny = build_backbone("tiny-cnn")
    with pytest.raises(ConfigError, match=r"no feature map at stride 32; it has strides \[2, 4, 8, 16"):
        pyramid_layers(tiny.body, [8, 32])


@pytest.mark.parametrize("detector", DETECTORS)
def test_every_detector_trains_and_predicts_on_a_registry_backbone(detector):
    torch.manual_seed(0)
    config = DetectorConfig(detector=detector, strides=[4, 8, 16], fpn_channels=32, min_size=48, max_size=160,
                            anchor_sizes=[[8], [16], [32]])
    model = build_detector(build_backbone("tiny-cnn"), 3, config)
    images = [torch.rand(3, 48, 160), torch.rand(3, 48, 160)]
    targets = [{"boxes": torch.tensor([[0.0, 10.0, 30.0, 47.0], [100.0, 5.0, 159.0, 40.0]]),
                "labels": torch.tensor([1, 3])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]  # an empty scene
    model.train()
    losses = model(images, targets)
    total = sum(losses.values())
    assert math.isfinite(total.item()) and total.item() > 0
    total.backward()
    model.eval()
    with torch.no_grad():
        detections = model([torch.rand(3, 60, 200)])[0]
    assert set(detections) == {"boxes", "scores", "labels"}
    if len(detections["boxes"]):  # boxes come back in the input image's own coordinates
        assert detections["boxes"][:, 2].max() <= 200 and detections["boxes"][:, 3].max() <= 60
        assert detections["labels"].max() <= 3  # 0 is background (the task drops it), 1..3 the classes


def test_fcos_points_are_sized_to_the_strides_used():
    # FCOS assigns a box to the level whose range (4x to 8x the point's size) holds its reach, so
    # the points must follow head.strides, not torchvision's default 8..128.
    config = DetectorConfig(detector="fcos", strides=[4, 8, 16], fpn_channels=32, min_size=48, max_size=160)
    model = build_detector(build_backbone("tiny-cnn"), 3, config).eval()
    images, _ = model.transform([torch.rand(3, 48, 160)])
    features = list(model.backbone(images.tensors).values())
    points = model.anchor_generator(images, features)[0]
    levels = points.split([f.shape[-2] * f.shape[-1] for f in features])
    assert [(p[:, 2] - p[:, 0]).unique().tolist() for p in levels] == [[4.0], [8.0], [16.0], [32.0], [64.0]]
    width = images.tensors.shape[-1]
    assert [f.shape[-1] for f in features] == [math.ceil(width / stride) for stride in (4, 8, 16, 32, 64)]


def test_unknown_detector_names_the_choices():
    with pytest.raises(ConfigError, match="head.detector: unknown detector 'yolo'; choose one of fcos"):
        build_detector(build_backbone("tiny-cnn"), 3, DetectorConfig(detector="yolo"))


def test_augmentation_moves_boxes_with_pixels_and_drops_boxes_pushed_out():
    from torchvision import tv_tensors

    flip = image_augmentation(AugmentConfig(hflip=1.0, color_jitter=0.0, scale=[1.0, 1.0], translate=0.0), boxes=True)
    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    image[:, 10:20, 5:15] = 255
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[5.0, 10.0, 15.0, 20.0]]), format="XYXY", canvas_size=(50, 100))
    out = flip({"image": tv_tensors.Image(image), "boxes": boxes, "labels": torch.tensor([2])})
    assert out["boxes"].tolist() == [[85.0, 10.0, 95.0, 20.0]]
    assert out["image"][0, 15, 90] == 255 and out["image"][0, 15, 10] == 0

    shift = image_augmentation(AugmentConfig(hflip=0.0, color_jitter=0.0, scale=[1.0, 1.0], translate=0.3), boxes=True)
    torch.manual_seed(3)
    edge = tv_tensors.BoundingBoxes(torch.tensor([[0.0, 0.0, 2.0, 50.0], [40.0, 10.0, 60.0, 30.0]]), format="XYXY",
                                    canvas_size=(50, 100))
    kept = []
    for _ in range(20):
        result = shift({"image": tv_tensors.Image(image), "boxes": edge, "labels": torch.tensor([1, 2])})
        assert len(result["boxes"]) == len(result["labels"])  # labels follow the boxes that survive
        kept.append(len(result["boxes"]))
    assert min(kept) == 1 and max(kept) == 2  # the 2-px border box leaves the image in some shifts


def test_bad_scale_range_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"data.augment.scale must be \[low, high\]"):
        image_augmentation(AugmentConfig(scale=[1.2, 0.8]), boxes=True)


def test_the_default_augmentation_is_flip_colour_then_affine():
    from torchvision.transforms import v2

    pipeline = image_augmentation(AugmentConfig(), boxes=True, min_box_size=2.0)
    kinds = [type(step) for step in pipeline.transforms]
    assert kinds == [v2.RandomHorizontalFlip, v2.ColorJitter, v2.RandomAffine, v2.ClampBoundingBoxes,
                     v2.SanitizeBoundingBoxes]
    assert pipeline.transforms[0].p == 0.5 and pipeline.transforms[1].brightness == (0.8, 1.2)
    assert pipeline.transforms[2].scale == (0.9, 1.1) and pipeline.transforms[2].translate == (0.05, 0.05)
    assert pipeline.transforms[4].min_size == 2.0


def test_head_lr_reaches_the_pyramid_and_head_but_not_the_backbone():
    from crossfuse.api import resolve_config, task_class

    task = task_class("driving-detection")(resolve_config("driving-detection", overrides=["head.strides=[4,8,16]"]))
    backbone = build_backbone("tiny-cnn")
    task.backbones = {"backbone": backbone}
    model = task.build_model(backbone)
    fresh = {id(p) for p in task.fresh_parameters(model)}
    inherited = {id(p) for p in backbone.parameters()}
    assert fresh and not fresh & inherited  # the detector shares the backbone's own parameters
    assert fresh | inherited == {id(p) for p in model.parameters()}
