"""The detection run exported: the whole torchvision detector in ONNX, one image per call."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def exported(tiny_detection_run, tmp_path_factory):
    from crossfuse import api
    from crossfuse.testing import demo_cache

    with demo_cache(tiny_detection_run.run_dir.parent / "cache"):  # where the fixture's fit left its demo data
        return api.export(tiny_detection_run.run_dir, "onnx", output=tmp_path_factory.mktemp("export") / "onnx")


def test_the_exported_detector_finds_the_same_boxes_and_map(exported):
    fp32, pytorch = exported.parity["results"]["fp32"], exported.parity["results"]["pytorch"]
    assert fp32["max_abs_diff_by_output"]["detections"] < 1e-3  # pixel coordinates
    assert fp32["metrics"]["mAP@.5"] == pytest.approx(pytorch["metrics"]["mAP@.5"], abs=1e-9)


def test_onnxruntime_runs_it_on_an_image_of_another_size(exported):
    import numpy as np
    import onnxruntime

    assert "whole torchvision detector" in exported.descriptor["part"]
    session = onnxruntime.InferenceSession(str(exported.model_file), providers=["CPUExecutionProvider"])
    boxes, scores, labels = session.run(None, {"image": np.random.default_rng(0).random((3, 60, 120), np.float32)})
    assert boxes.shape[1:] == (4,) and len(scores) == len(labels) == len(boxes)
