"""The face task on the core contract: train vs evaluation preprocessing, fresh parameters, task state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crossfuse.augment import ImageAugment
from crossfuse_face.config import FaceAugment
from crossfuse_face.data import PairSet
from crossfuse_face.lfw import FaceImage, Pair

TASK = "security-face-match"


def _task(*overrides: str):
    from crossfuse.api import get_backbone, resolve_config, task_class

    task = task_class(TASK)(resolve_config(TASK, overrides=["backbone.image_size=16", *overrides]))
    backbone = get_backbone("tiny-cnn", image_size=16)
    task.backbones = {"image": backbone}  # what the core does before build_model
    task.identities, task.labels = ["Ann", "Ben"], {"Ann": 0, "Ben": 1}
    return task, task.build_model(backbone)


@pytest.fixture
def face(tmp_path) -> str:
    """A left-right asymmetric picture: a flip changes it."""
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[:, :4] = 255
    Image.fromarray(pixels).save(tmp_path / "Ben_0001.png")
    return str(tmp_path / "Ben_0001.png")


def test_augmentation_keeps_today_s_defaults_on_the_core_s_config():
    augment = FaceAugment()
    assert isinstance(augment, ImageAugment)
    assert (augment.hflip, augment.crop_scale, augment.color_jitter) == (0.5, [0.8, 1.0], 0.2)
    assert augment.rotation == 0.0 and augment.vflip == 0.0  # the core's other steps stay off


def test_only_training_samples_are_augmented(face):
    task, _ = _task("data.augment.hflip=1.0", "data.augment.crop_scale=[1.0,1.0]", "data.augment.color_jitter=0")
    image, label = task.preprocess(FaceImage(face, "Ben"), train=True)
    plain, no_label = task.preprocess(face, train=False)
    assert label == 1 and no_label is None
    assert torch.equal(image, plain.flip(-1)) and not torch.equal(image, plain)
    assert torch.equal(task.preprocess(face, train=False)[0], plain)  # evaluation is deterministic


def test_random_augmentation_draws_differ_between_epochs_but_not_in_evaluation(face):
    task, _ = _task()
    torch.manual_seed(0)
    draws = [task.preprocess(FaceImage(face, "Ann"), train=True)[0] for _ in range(4)]
    assert any(not torch.equal(draws[0], other) for other in draws[1:])
    assert all(torch.equal(task.preprocess(face, train=False)[0], task.preprocess(face, train=False)[0])
               for _ in range(2))


def test_collate_gives_labels_only_for_training_batches(face):
    task, _ = _task()
    train = task.collate([task.preprocess(FaceImage(face, name), train=True) for name in ("Ann", "Ben")])
    evaluation = task.collate([task.preprocess(face, train=False)] * 3)
    assert train["labels"].tolist() == [0, 1] and train["images"].shape == (2, 3, 16, 16)
    assert sorted(evaluation) == ["images"] and evaluation["images"].shape == (3, 3, 16, 16)


def test_head_lr_reaches_the_embedding_layer_and_the_margin_head():
    from crossfuse.config import TrainConfig
    from crossfuse.trainer import param_groups

    task, model = _task()
    fresh = {id(p) for p in task.fresh_parameters(model)}
    assert fresh == {id(p) for p in [*model.embed.parameters(), *model.margin.parameters()]}
    groups = param_groups(model, TrainConfig(lr=1e-4, head_lr=1e-2), task.fresh_parameters(model))
    by_lr: dict[float, set[int]] = {}
    for group in groups:  # decayed and undecayed groups share a learning rate
        by_lr.setdefault(group["lr"], set()).update(id(p) for p in group["params"])
    assert by_lr == {1e-2: fresh, 1e-4: {id(p) for p in model.backbone.parameters()}}


def test_calibrate_keeps_far_under_the_target_and_state_round_trips():
    task, _ = _task("data.calibration_far=0.25")
    pairs = PairSet([Pair("a1", "a2", True), Pair("b1", "b2", True), Pair("a1", "b1", False), Pair("a2", "b2", False)])
    # images (sorted): a1 a2 b1 b2; genuine pairs score 1 and 0.6, impostors 0.8 and 0.
    embedding = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    task.calibrate({"embedding": embedding}, pairs)
    assert task.operating_point["far"] <= 0.25 and task.operating_point["target_far"] == 0.25
    assert task.operating_point["tar"] == 0.5  # the impostor at 0.8 sits above the genuine pair at 0.6
    again, _ = _task()
    again.load_state_dict(task.state_dict())
    assert again.identities == ["Ann", "Ben"] and again.saved_point() == task.operating_point


def test_a_served_run_is_built_without_the_margin_head(tmp_path):
    from crossfuse.api import get_backbone, resolve_config, task_class

    task = task_class(TASK)(resolve_config(TASK))
    task.run_dir = tmp_path
    task.load_state_dict({"identities": ["Ann", "Ben"], "operating_point": None})
    assert task.build_model(get_backbone("tiny-cnn", image_size=16)).margin is None


def test_sample_labels_offer_balanced_sampling():
    task, _ = _task()
    assert task.sample_labels([FaceImage("x.jpg", "Ann"), FaceImage("y.jpg", "Ben")]) == ["Ann", "Ben"]


def test_registered_metrics_follow_the_core_convention():
    from crossfuse.metrics import metric_arguments
    from crossfuse.plugins import get_plugin_manager

    metrics = get_plugin_manager().metrics
    assert metric_arguments(metrics.get("verification").load()) == ["embedding", "samples", "task"]
    assert metric_arguments(metrics.get("rank1").load()) == ["embedding", "samples"]
