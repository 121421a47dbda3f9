"""The face run exported: the embedding network in ONNX, scored on the test pairs both ways."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def exported(tiny_face_run, tmp_path_factory):
    from crossfuse import api

    previous = os.environ.get("CROSSFUSE_CACHE")
    os.environ["CROSSFUSE_CACHE"] = str(tiny_face_run.run_dir.parent / "cache")  # the fixture's demo faces
    try:
        return api.export(tiny_face_run.run_dir, "onnx", output=tmp_path_factory.mktemp("export") / "onnx")
    finally:
        os.environ.pop("CROSSFUSE_CACHE") if previous is None else os.environ.__setitem__("CROSSFUSE_CACHE", previous)


def test_the_exported_embeddings_give_the_same_pair_metrics(exported):
    fp32, pytorch = exported.parity["results"]["fp32"], exported.parity["results"]["pytorch"]
    assert fp32["max_abs_diff_by_output"]["embedding"] < 1e-5
    for metric in ("accuracy", "roc_auc", "eer"):
        assert fp32["metrics"][metric] == pytest.approx(pytorch["metrics"][metric], abs=1e-9)


def test_the_margin_head_is_left_out_and_said_so(exported):
    import onnx

    descriptor = exported.descriptor
    assert descriptor["part"].startswith("the embedding network") and "margin head" in descriptor["left_out"]
    weights = [init.name for init in onnx.load(str(exported.model_file)).graph.initializer]
    assert not [name for name in weights if "margin" in name]
    assert "threshold" in descriptor["task_state"]["operating_point"]
