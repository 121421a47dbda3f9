"""`crossfuse run medical-imaging` end to end on small files the tests write: multi-label from a MedMNIST
.npz (run, report, predict with the saved thresholds, eval), multi-class from class folders, binary from
a CSV and from a DICOM folder, and class-balanced sampling. Tiny CNN, 32 px, one epoch: seconds each."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli
from medical_files import write_binary_csv, write_class_folders, write_csv, write_dicom, write_films, write_png

FAST = ["--set", "backbone.name=tiny-cnn", "--set", "backbone.image_size=32", "--set", "train.progress=false",
        "--set", "train.batch_size=16", "--epochs", "1"]


def run(*args):
    result = cli("run", "medical-imaging", *args, *FAST)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    """One multi-label run on a synthetic .npz, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("multilabel")
    data = write_films(root / "films.npz")
    run("--data", data, "--output", root / "run")
    return root / "run", data


def report_of(run_dir):
    return json.loads((run_dir / "report.json").read_text())


def test_multilabel_run_writes_a_report_with_auroc_thresholds_and_pictures(multilabel):
    run_dir, _ = multilabel
    report = report_of(run_dir)
    assert report["main_metric"] == "auroc" and report["sizes"] == {"train": 48, "validation": 16, "test": 16}
    test = report["splits"]["test"]
    assert set(test["auroc_per_class"]) == {"opacity", "nodule", "effusion", "cardiomegaly"}
    assert test["auroc"] is None or 0 <= test["auroc"] <= 1
    assert set(test["confusion_matrix"]) == set(test["auroc_per_class"])  # a 2 x 2 matrix per finding
    assert all(row["threshold"] is not None for row in test["per_class"].values())
    for picture in ("roc_test.png", "confusion_test.png", "reliability_validation.png"):
        assert picture in report["pictures"] and (run_dir / picture).stat().st_size > 1000


def test_thresholds_are_chosen_on_validation_saved_and_used_by_predict(multilabel, tmp_path):
    run_dir, _ = multilabel
    state = json.loads((run_dir / "task_state.json").read_text())
    assert state["label_space"] == {"kind": "multilabel", "classes": ["opacity", "nodule", "effusion", "cardiomegaly"]}
    assert state["threshold_rule"] == "youden" and len(state["thresholds"]) == 4 and state["image_mode"] == "L"
    picture = write_png(tmp_path / "film.png", np.full((32, 32), 90, dtype=np.uint8))
    before = json.loads(cli("predict", run_dir, picture, "--json").stdout)[0]
    assert [f["threshold"] for f in before["findings"]] == pytest.approx(state["thresholds"], abs=1e-4)
    state["thresholds"] = [0.0, 1.0, 0.0, 1.0]  # the saved thresholds decide, whatever the probabilities
    (run_dir / "task_state.json").write_text(json.dumps(state))
    after = json.loads(cli("predict", run_dir, picture, "--json").stdout)[0]
    assert [f["positive"] for f in after["findings"]] == [True, False, True, False]
    assert after["label"] == "opacity, effusion"
    text = cli("predict", run_dir, picture).stdout
    assert "opacity" in text and ">= 0.000  POSITIVE" in text and "<  1.000  negative" in text


def test_eval_scores_the_test_split_by_default_and_validation_on_request(multilabel):
    run_dir, data = multilabel
    report = report_of(run_dir)
    scored = json.loads(cli("eval", run_dir, "--data", data, "--json").stdout)
    assert scored["auroc_per_class"] == report["splits"]["test"]["auroc_per_class"]
    validation = json.loads(cli("eval", run_dir, "--data", data, "--split", "validation", "--json").stdout)
    assert validation["auroc"] == pytest.approx(report["splits"]["validation"]["auroc"])


def test_predict_takes_folders_and_dicom_files(multilabel, tmp_path):
    run_dir, _ = multilabel
    write_png(tmp_path / "folder" / "a.png", np.full((40, 30), 120, dtype=np.uint8))  # not square: padded
    write_dicom(tmp_path / "folder" / "sub" / "b.dcm", (np.arange(32 * 32).reshape(32, 32) * 4).astype(np.uint16),
                bits_stored=12, photometric="MONOCHROME1")
    result = cli("predict", run_dir, tmp_path / "folder", "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["input"].rsplit("/", 1)[-1] for p in predictions] == ["a.png", "b.dcm"]
    assert all(len(p["findings"]) == 4 for p in predictions)


def test_multiclass_run_from_class_folders(tmp_path):
    data = write_class_folders(tmp_path / "folders")
    run("--data", data, "--output", tmp_path / "run", "--set", "train.sampler=balanced")
    state = json.loads((tmp_path / "run" / "task_state.json").read_text())
    assert state["label_space"]["kind"] == "multiclass" and state["thresholds"] is None  # the arg-max decides
    test = report_of(tmp_path / "run")["splits"]["test"]
    assert len(test["confusion_matrix"]) == len(state["label_space"]["classes"]) and "macro_f1" in test
    assert (tmp_path / "run" / "confusion_matrix.png").is_file()  # crossfuse.pictures.draw_confusion_matrices
    prediction = json.loads(cli("predict", tmp_path / "run", data / "test", "--json").stdout)[0]
    assert sum(f["positive"] for f in prediction["findings"]) == 1 and prediction["label"] in state["label_space"]["classes"]


def test_binary_run_from_a_csv_carves_validation_and_test_stratified(tmp_path):
    table = write_binary_csv(tmp_path / "csv")
    run("--data", table, "--output", tmp_path / "run", "--set", "data.test_fraction=0.2",
        "--set", "data.validation_fraction=0.2", "--set", "train.sampler=balanced")
    state = json.loads((tmp_path / "run" / "task_state.json").read_text())
    assert state["label_space"] == {"kind": "binary", "classes": ["normal", "abnormal"]}
    assert len(state["thresholds"]) == 1
    report = report_of(tmp_path / "run")
    assert report["sizes"] == {"train": 24, "validation": 8, "test": 8}
    assert list(report["splits"]["test"]["auroc_per_class"]) == ["abnormal"]


def test_binary_run_from_a_dicom_folder(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        label = i % 2
        pixels = (rng.integers(0, 1500, (32, 32)) + label * 1500).astype(np.uint16)
        write_dicom(tmp_path / "dicom" / f"img{i:02d}.dcm", pixels, bits_stored=12, slope=1.0, intercept=-1024.0,
                    photometric="MONOCHROME1" if i % 3 else "MONOCHROME2")
        rows.append([f"img{i:02d}.dcm", ["normal", "effusion"][label]])
    write_csv(tmp_path / "dicom" / "labels.csv", ["file", "label"], rows)
    run("--data", tmp_path / "dicom", "--output", tmp_path / "run", "--set", "data.validation_fraction=0.25")
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "format: auto" in config
    state = json.loads((tmp_path / "run" / "task_state.json").read_text())
    assert state["label_space"] == {"kind": "binary", "classes": ["normal", "effusion"]}
    prediction = json.loads(cli("predict", tmp_path / "run", tmp_path / "dicom" / "img01.dcm", "--json").stdout)[0]
    assert prediction["label"] in ("normal", "effusion") and prediction["findings"][0]["name"] == "effusion"


def test_multilabel_balanced_sampling_runs(tmp_path):
    data = write_films(tmp_path / "films.npz", 40, 12, 8)
    run("--data", data, "--output", tmp_path / "run", "--set", "train.sampler=balanced")
    assert report_of(tmp_path / "run")["steps"] == 3  # 40 draws with replacement, batches of 16


def test_colour_data_switches_the_backbone_to_three_channels(tmp_path):
    from medical_files import medmnist_arrays, write_npz

    data = write_npz(tmp_path / "colour.npz", **medmnist_arrays(channels=3, count=(12, 6, 6)))
    result = run("--data", data, "--output", tmp_path / "run")
    assert "the images are in colour" in result.stderr
    assert "in_channels: 3" in (tmp_path / "run" / "config.yaml").read_text()
    assert json.loads((tmp_path / "run" / "task_state.json").read_text())["image_mode"] == "RGB"


def test_a_transformers_image_model_takes_the_grey_films_in_three_channels(tmp_path):
    from crossfuse.testing import write_tiny_image_backbone

    vit = write_tiny_image_backbone(tmp_path / "vit", image_size=32)
    data = write_films(tmp_path / "films.npz", 24, 8, 8)
    result = cli("run", "medical-imaging", "--data", data, "--output", tmp_path / "run", *FAST,
                 "--set", f"backbone.name={vit}")
    assert result.returncode == 0, result.stderr
    assert "takes RGB" in result.stderr and "in_channels: 3" in (tmp_path / "run" / "config.yaml").read_text()
    assert json.loads((tmp_path / "run" / "task_state.json").read_text())["image_mode"] == "L"  # grey data
    picture = write_png(tmp_path / "film.png", np.full((32, 32), 90, dtype=np.uint8))
    assert len(json.loads(cli("predict", tmp_path / "run", picture, "--json").stdout)[0]["findings"]) == 4
    assert_usage_error(cli("predict", tmp_path / "run", picture, "--explain"), "Grad-CAM has nothing to draw")


@pytest.mark.slow
def test_the_default_config_runs_on_a_small_demo(tmp_path):
    """The shipped defaults (ResNet-18 at 64 px, the demo films) end to end, on 300 films and one epoch."""
    result = cli("run", "medical-imaging", "--output", tmp_path / "run", "--epochs", "1", "--set", "train.progress=false",
                 "--set", "data.demo.train=200", "--set", "data.demo.validation=50", "--set", "data.demo.test=50")
    assert result.returncode == 0, result.stderr
    report = report_of(tmp_path / "run")
    assert report["backbone"] == "resnet18" and report["sizes"] == {"train": 200, "validation": 50, "test": 50}
    assert "in_channels: 1" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_grey_medical_run_starts_an_rgb_face_backbone(multilabel):
    import torch
    from safetensors.torch import load_file

    import crossfuse
    from crossfuse.run_backbones import build_backbones

    run_dir, _ = multilabel
    config = crossfuse.resolve_config("security-face-match", backbone="tiny-cnn",
                                      overrides=[f"backbone.init_from={run_dir}"])
    backbones, origins = build_backbones(crossfuse.api.task_class("security-face-match"), config)
    trained = {key.removeprefix("backbone."): value
               for key, value in load_file(str(run_dir / "checkpoints" / "best.safetensors")).items()}
    (adapted,) = origins["backbone"]["adapted"]  # the grey first convolution, split over R, G and B
    for key, value in backbones["backbone"].state_dict().items():
        expected = trained[key].repeat(1, 3, 1, 1) / 3 if key == adapted else trained[key]
        assert torch.allclose(value, expected), key
    assert origins["backbone"]["task"] == "medical-imaging"
