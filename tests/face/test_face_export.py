"""The face run exported: the embedding network in ONNX, scored on the test pairs both ways."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def exported(tiny_face_run, tmp_path_factory):
    from crossfuse import api
    from crossfuse.testing import demo_cache

    with demo_cache(tiny_face_run.run_dir.parent / "cache"):  # where the fixture's fit left its demo data
        return api.export(tiny_face_run.run_dir, "onnx", output=tmp_path_factory.mktemp("export") / "onnx")


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
