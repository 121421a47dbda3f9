"""The detection run exported: the whole torchvision detector in ONNX, one image per call."""

from __future__ import annotations

import pytest

from export_checks import assert_matches_pytorch, export_fit


@pytest.fixture(scope="module")
def exported(tiny_detection_run, tmp_path_factory):
    return export_fit(tiny_detection_run, tmp_path_factory.mktemp("export") / "onnx")


def test_the_exported_detector_finds_the_same_boxes_and_map(exported):
    assert_matches_pytorch(exported, "detections", 1e-3, ["mAP@.5"])  # pixel coordinates


def test_onnxruntime_runs_it_on_an_image_of_another_size(exported):
    import numpy as np
    import onnxruntime

    assert "whole torchvision detector" in exported.descriptor["part"]
    session = onnxruntime.InferenceSession(str(exported.model_file), providers=["CPUExecutionProvider"])
    boxes, scores, labels = session.run(None, {"image": np.random.default_rng(0).random((3, 60, 120), np.float32)})
    assert boxes.shape[1:] == (4,) and len(scores) == len(labels) == len(boxes)
