"""The keyword spotter exported: encoder and classifier from log-mel features; the front end is described."""

from __future__ import annotations

import pytest

from export_checks import assert_matches_pytorch
from voice_files import tone_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from crossfuse import api

    folder = tmp_path_factory.mktemp("voice-export")
    _, result = tone_run(folder)
    return api.export(result.run_dir, "onnx", output=folder / "onnx")


def test_the_exported_classifier_gives_pytorchs_probabilities_and_accuracy(exported):
    assert_matches_pytorch(exported, "probabilities", 1e-5, ["accuracy"])


def test_the_front_end_is_left_out_with_its_settings(exported):
    descriptor = exported.descriptor
    assert [i["name"] for i in descriptor["inputs"]] == ["features", "feature_lengths"]
    assert descriptor["inputs"][0]["shape"][0] == "batch" and descriptor["inputs"][0]["shape"][2] == "frames"
    assert "front end" in descriptor["left_out"] and "hop_length=160" in descriptor["left_out"]
    assert descriptor["produced_by"]["backbone"]["sample_rate"] == 16000
