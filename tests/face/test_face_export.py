"""The face run exported: the embedding network in ONNX, scored on the test pairs both ways."""

from __future__ import annotations

import pytest

from export_checks import assert_matches_pytorch, export_fit


@pytest.fixture(scope="module")
def exported(tiny_face_run, tmp_path_factory):
    return export_fit(tiny_face_run, tmp_path_factory.mktemp("export") / "onnx")


def test_the_exported_embeddings_give_the_same_pair_metrics(exported):
    assert_matches_pytorch(exported, "embedding", 1e-5, ["accuracy", "roc_auc", "eer"])


def test_the_margin_head_is_left_out_and_said_so(exported):
    import onnx

    descriptor = exported.descriptor
    assert descriptor["part"].startswith("the embedding network") and "margin head" in descriptor["left_out"]
    weights = [init.name for init in onnx.load(str(exported.model_file)).graph.initializer]
    assert not [name for name in weights if "margin" in name]
    assert "threshold" in descriptor["task_state"]["operating_point"]
