"""The finance run exported to ONNX: the text encoder and head, checked on the run's own test split."""

from __future__ import annotations

import pytest

from export_checks import assert_matches_pytorch


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    from crossfuse import api

    return api.export(tiny_run.run_dir, "onnx", output=tmp_path_factory.mktemp("export") / "onnx")


def test_the_onnx_model_gives_pytorchs_probabilities_and_macro_f1(exported):
    assert_matches_pytorch(exported, "probabilities", 1e-5, ["macro_f1"])


def test_the_descriptor_carries_the_labels_and_the_fitted_temperature(exported):
    descriptor = exported.descriptor
    assert descriptor["labels"] == ["negative", "neutral", "positive"]
    assert descriptor["task_state"]["temperature"] > 0
    assert descriptor["dynamic_axes"]["input_ids"] == {"0": "batch", "1": "sequence"}
