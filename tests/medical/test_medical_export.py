"""Medical runs exported: the multi-label CNN, and the image + note fusion with its presence flags."""

from __future__ import annotations

import pytest

from cli_runner import crossfuse as cli
from export_checks import assert_matches_pytorch
from medical_files import write_films

FAST = ["--set", "train.progress=false", "--set", "train.batch_size=16", "--epochs", "1"]


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    from crossfuse import api

    root = tmp_path_factory.mktemp("multilabel-export")
    result = cli("run", "medical-imaging", "--data", write_films(root / "films.npz"), "--output", root / "run",
                 "--set", "backbone.name=tiny-cnn", "--set", "backbone.image_size=32", *FAST)
    assert result.returncode == 0, result.stderr
    return api.export(root / "run", "onnx", quantize="int8", output=root / "onnx")


def test_the_exported_cnn_gives_pytorchs_probabilities_and_auroc(multilabel):
    assert_matches_pytorch(multilabel, "probabilities", 1e-5, ["auroc"])


def test_int8_quantises_the_convolutions_and_says_the_gemm_stays(multilabel):
    quantization = multilabel.parity["results"]["int8"]["quantization"]
    assert "Conv" in quantization["quantized"] and "Gemm" in quantization["left_in_fp32"]
    image = multilabel.descriptor["produced_by"]["backbone"]
    assert image["channels"] == 1 and image["mean"] and image["std"] and image["resize"]


@pytest.mark.slow  # a 1000-case test split scored three ways per batch: 11-25 s on 2 shared cores
def test_the_fusion_export_scores_fused_and_alone_like_pytorch(tmp_path):
    from crossfuse import api

    result = cli("run", "medical-image-report", "--data", write_films(tmp_path / "films.npz"), "--output",
                 tmp_path / "run", "--set", "backbones.image.name=tiny-cnn", "--set", "backbones.image.image_size=32",
                 "--set", "backbones.text.name=tiny-bert", *FAST)
    assert result.returncode == 0, result.stderr
    exported = api.export(tmp_path / "run", "onnx", output=tmp_path / "onnx")
    fp32 = exported.parity["results"]["fp32"]
    assert [i["name"] for i in exported.descriptor["inputs"]] == ["images", "input_ids", "attention_mask", "keep"]
    for key in ("probabilities", "probabilities_image", "probabilities_text"):
        assert fp32["max_abs_diff_by_output"][key] < 1e-5
    assert fp32["metrics"]["auroc"] == pytest.approx(exported.parity["results"]["pytorch"]["metrics"]["auroc"])
