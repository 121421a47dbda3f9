"""preprocess(sample, train): augmentation and ignore-region masking happen to training samples only."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from crossfuse.api import resolve_config, task_class
from crossfuse_driving.formats import read_kitti

from driving_files import kitti_line, write_kitti

NO_RANDOM_STEPS = ["data.augment.color_jitter=0", "data.augment.scale=[1,1]", "data.augment.translate=0"]


def detection_task(*overrides):
    return task_class("driving-detection")(resolve_config("driving-detection", overrides=list(overrides)))


def noisy_scene(tmp_path):
    """A 40 x 30 image of seeded noise with one car and one DontCare region."""
    training = write_kitti(tmp_path / "kitti", {"000000": [
        kitti_line("Car", (1, 2, 11, 12)), kitti_line("DontCare", (20, 0, 25, 5), truncated="-1", occluded="-1")]})
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(training / "image_2" / "000000.png")
    (sample,) = read_kitti(training)
    return sample, torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)


def test_evaluation_samples_are_the_image_as_read(tmp_path):
    sample, pixels = noisy_scene(tmp_path)
    task = detection_task()  # the default augmentation: flips, colour, zoom and shift
    torch.manual_seed(0)
    for _ in range(5):
        item = task.preprocess(sample, train=False)
        assert torch.equal(item["image"], pixels)
        assert item["boxes"].tolist() == [[1.0, 2.0, 11.0, 12.0]] and item["labels"].tolist() == [1]
    trained = [task.preprocess(sample, train=True)["image"] for _ in range(5)]
    assert all(not torch.equal(image, pixels) for image in trained)


def test_training_samples_are_flipped_with_their_boxes_and_ignore_regions_masked(tmp_path):
    sample, pixels = noisy_scene(tmp_path)
    task = detection_task("data.augment.hflip=1.0", *NO_RANDOM_STEPS)
    item = task.preprocess(sample, train=True)
    assert item["boxes"].tolist() == [[29.0, 2.0, 39.0, 12.0]]  # x -> 40 - x
    dont_care = item["image"][:, 0:6, 14:20].flip(-1)  # pixels 20..25 (inclusive) of the unflipped image
    assert (dont_care == dont_care[:, :1, :1]).all()  # one colour: the image's mean
    assert not torch.equal(dont_care, pixels[:, 0:6, 20:26])
    outside = item["image"][:, 10:, :14].flip(-1)  # unmasked, away from the region: only flipped
    assert torch.equal(outside, pixels[:, 10:, 26:])


def test_augmentation_off_leaves_training_images_but_still_masks(tmp_path):
    sample, pixels = noisy_scene(tmp_path)
    task = detection_task("data.augment.hflip=0", *NO_RANDOM_STEPS)
    assert task.augmentation is None
    item = task.preprocess(sample, train=True)
    assert torch.equal(item["image"][:, 10:], pixels[:, 10:]) and not torch.equal(item["image"], pixels)
    unmasked = detection_task("data.augment.hflip=0", "data.mask_ignore_regions=false", *NO_RANDOM_STEPS)
    assert torch.equal(unmasked.preprocess(sample, train=True)["image"], pixels)
