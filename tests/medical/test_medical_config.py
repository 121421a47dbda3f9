"""The medical data config: what the core's config builder makes of it, and the checks beyond types."""

from __future__ import annotations

import pytest

from crossfuse.config import build
from crossfuse.errors import ConfigError
from crossfuse_medical.config import MedicalDataConfig, check_data_config


def test_yaml_values_build_the_nested_config_and_defaults_suit_radiographs():
    data = build(MedicalDataConfig, {"train": "chest.npz", "labels": ["a", "b"], "window_center": "40", "window_width": 400,
                                     "augment": {"rotation": 5}, "demo": {"variant": "multiclass"}}, prefix="data.")
    assert data.train == "chest.npz" and data.window_center == 40.0 and data.augment.rotation == 5.0
    assert data.demo.variant == "multiclass" and data.augment.hflip == 0.0  # anatomy is not symmetric
    assert (data.format, data.threshold, data.problem) == ("auto", "youden", "auto")
    check_data_config(data)


def test_the_augmentation_is_the_cores_pipeline_with_radiograph_defaults():
    from crossfuse.augment import ImageAugment, image_augmentation

    data = MedicalDataConfig()
    assert isinstance(data.augment, ImageAugment)
    steps = [type(step).__name__ for step in image_augmentation(data.augment).transforms]
    assert steps == ["SameSizeCrop", "ColorJitter", "RandomAffine"]  # no flip
    data.augment.rotation, data.augment.translate, data.augment.scale = 0.0, 0.0, [1.0, 1.0]
    data.augment.crop_scale, data.augment.color_jitter = [1.0, 1.0], 0.0
    assert image_augmentation(data.augment) is None  # each step switches off


def test_unknown_keys_and_choices_are_refused_by_the_builder():
    with pytest.raises(ConfigError, match="data.threshold must be one of 'youden', 'sensitivity'"):
        build(MedicalDataConfig, {"threshold": "f1"}, prefix="data.")
    with pytest.raises(ConfigError, match="unknown key 'data.augment.flip'"):
        build(MedicalDataConfig, {"augment": {"flip": 0.5}}, prefix="data.")


@pytest.mark.parametrize("values, message", [
    ({"window_center": 40.0}, "window_center and data.window_width go together"),
    ({"window_center": 40.0, "window_width": 0.5}, "window_width must be at least 1"),
    ({"target_sensitivity": 0.0}, r"target_sensitivity must be in \(0, 1\]"),
    ({"calibration_bins": 0}, "calibration_bins must be at least 1"),
    ({"uncertain_as": 2}, "uncertain_as must be 0, 1 or unset"),
    ({"labels": ["a", "a"]}, "names a class twice"),
    ({"augment": {"rotation": 200.0}}, r"augment.rotation must be in \[0, 180\]"),
    ({"augment": {"scale": [1.1, 0.9]}}, "augment.scale must be"),
    ({"augment": {"crop_scale": [0.8, 1.2]}}, r"augment.crop_scale must be \[low, high\] with 0 < low <= high <= 1"),
    ({"augment": {"hflip": 1.5}}, r"augment.hflip must be in \[0, 1\]"),
    ({"demo": {"train": 0}}, "demo.train must be at least 1"),
    ({"demo": {"size": 16}}, "demo.size must be between 28 and 256"),
])
def test_inconsistent_values_are_config_errors_naming_the_key(values, message):
    data = build(MedicalDataConfig, values, prefix="data.")
    with pytest.raises(ConfigError, match=message):
        check_data_config(data)
