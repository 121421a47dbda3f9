"""Calibrated probabilities of the medical tasks: Platt scaling per sigmoid output (a temperature for
multi-class) fitted on validation, saved in task_state.json, reported before and after, and used by
predict; raw outputs for distillation; old runs and head.calibration=false keep the raw sigmoid.
Tiny CNN, 32 px, one epoch on the small synthetic films: seconds each."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cli_runner import crossfuse as cli
from medical_files import write_class_folders, write_films, write_png

FAST = ["--set", "backbone.name=tiny-cnn", "--set", "backbone.image_size=32", "--set", "train.progress=false",
        "--set", "train.batch_size=16", "--epochs", "1"]
FINDINGS = ["opacity", "nodule", "effusion", "cardiomegaly"]


def run(*args, task="medical-imaging", fast=FAST):
    result = cli("run", task, *args, *fast)
    assert result.returncode == 0, result.stderr
    return result


def state_of(run_dir):
    return json.loads((run_dir / "task_state.json").read_text())


def report_of(run_dir):
    return json.loads((run_dir / "report.json").read_text())


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    """One multi-label run (calibration on, the default), shared by the tests that read it."""
    root = tmp_path_factory.mktemp("calibrated")
    data = write_films(root / "films.npz")
    run("--data", data, "--output", root / "run")
    return root / "run", data


def raw_outputs(predictor, images):
    """``predict_step`` outputs (raw logits, calibrated probabilities) of the image files through the run's model."""
    return predictor.task.run_batch(predictor.model, [predictor.task.load_input(str(image)) for image in images])


def split_of(predictor, data, split):
    """The ``split`` of the films file as the run's task encodes it (images with their labels)."""
    task = predictor.task
    return task.prepare_eval(getattr(task.read(str(data), format="medmnist", key="films"), split))


def split_logits(predictor, data, split):
    return predictor.task.run_batch(predictor.model, split_of(predictor, data, split))["logits"].numpy()


def platt(logits, scaling):
    return 1 / (1 + np.exp(-(np.asarray(scaling["slopes"]) * logits + np.asarray(scaling["biases"]))))


def test_the_run_saves_a_fitted_platt_scaling_per_finding(multilabel):
    run_dir, _ = multilabel
    scaling = state_of(run_dir)["calibration"]
    assert scaling["method"] == "platt" and len(scaling["slopes"]) == len(scaling["biases"]) == 4
    assert all(0.05 <= a <= 20 for a in scaling["slopes"])
    assert (scaling["slopes"], scaling["biases"]) != ([1.0] * 4, [0.0] * 4)  # fitted, not the identity


def test_every_split_reports_the_error_before_and_after_scaling(multilabel):
    run_dir, _ = multilabel
    report = report_of(run_dir)
    slopes = state_of(run_dir)["calibration"]["slopes"]
    for split in ("validation", "test"):
        metrics = report["splits"][split]
        assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["ece_before_scaling"] <= 1
        assert list(metrics)[list(metrics).index("ece") + 1] == "ece_before_scaling"  # side by side
        calibration = metrics["calibration"]
        assert calibration["method"] == "platt" and set(calibration["curves"]) == set(FINDINGS)
        assert calibration["before_scaling"]["ece"] == metrics["ece_before_scaling"]
        assert [metrics["platt"][name]["slope"] for name in FINDINGS] == slopes
    # the scaling is fitted on validation: there it must not calibrate worse than the raw sigmoid
    assert report["splits"]["validation"]["ece"] <= report["splits"]["validation"]["ece_before_scaling"]
    html = (run_dir / "report.html").read_text()
    assert "ece_before_scaling" in html and "reliability_test.png" in report["pictures"]


def test_the_report_keeps_the_ranking_of_the_raw_probabilities(multilabel):
    from sklearn.metrics import roc_auc_score

    from crossfuse import api

    run_dir, data = multilabel
    logits = split_logits(api.load(run_dir), data, "test")
    report = report_of(run_dir)["splits"]["test"]["auroc_per_class"]
    for c, name in enumerate(FINDINGS):
        truth = np.load(data)["test_labels"][:, c]
        if 0 < truth.sum() < len(truth):
            assert report[name] == pytest.approx(roc_auc_score(truth, logits[:, c]), abs=1e-6)


def test_thresholds_are_chosen_on_the_calibrated_validation_probabilities(multilabel):
    from crossfuse import api

    run_dir, data = multilabel
    state = state_of(run_dir)
    calibrated = platt(split_logits(api.load(run_dir), data, "validation"), state["calibration"])
    for c, threshold in enumerate(state["thresholds"]):
        if threshold is not None:  # a threshold is one of the scores it was chosen among
            assert np.abs(calibrated[:, c] - threshold).min() < 1e-6


def test_predict_prints_platt_probabilities_of_the_raw_logits(multilabel, tmp_path):
    from crossfuse import api

    run_dir, _ = multilabel
    film = write_png(tmp_path / "film.png", np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8))
    logits = raw_outputs(api.load(run_dir), [film])["logits"].numpy()[0]
    expected = platt(logits, state_of(run_dir)["calibration"])
    printed = json.loads(cli("predict", run_dir, film, "--json").stdout)[0]
    assert [f["probability"] for f in printed["findings"]] == pytest.approx(expected, abs=6e-5)
    assert not np.allclose(expected, 1 / (1 + np.exp(-logits)), atol=1e-3)  # not the raw sigmoid


def test_the_export_carries_the_scaling_and_matches_the_run(multilabel, tmp_path):
    from crossfuse import api

    run_dir, _ = multilabel
    exported = api.export(run_dir, "onnx", output=tmp_path / "onnx")
    assert exported.descriptor["task_state"]["calibration"] == state_of(run_dir)["calibration"]
    assert "sigmoid(slopes[c]" in exported.descriptor["left_out"]
    fp32, pytorch = exported.parity["results"]["fp32"], exported.parity["results"]["pytorch"]
    assert fp32["max_abs_diff_by_output"]["probabilities"] < 1e-5
    for key in ("auroc", "ece", "ece_before_scaling"):
        assert fp32["metrics"][key] == pytest.approx(pytorch["metrics"][key], abs=1e-6), key
    assert pytorch["metrics"]["ece"] == pytest.approx(report_of(run_dir)["splits"]["test"]["ece"], abs=1e-6)


def test_a_run_saved_before_calibration_loads_with_the_raw_sigmoid(multilabel, tmp_path):
    from crossfuse import api

    run_dir, _ = multilabel
    old = shutil.copytree(run_dir, tmp_path / "old")
    state = state_of(old)
    del state["calibration"]
    (old / "task_state.json").write_text(json.dumps(state))
    film = write_png(tmp_path / "film.png", np.full((32, 32), 90, dtype=np.uint8))
    outputs = raw_outputs(api.load(old), [film])
    assert torch.allclose(outputs["probabilities"].double(), outputs["logits"].double().sigmoid(), atol=1e-7)
    printed = api.load(old).predict([str(film)])[0]
    assert [f["probability"] for f in printed["findings"]] == pytest.approx(outputs["logits"][0].sigmoid().tolist(),
                                                                            abs=6e-5)


def test_a_scaling_for_other_outputs_is_refused_naming_the_file(multilabel, tmp_path):
    from crossfuse import api
    from crossfuse.errors import CrossfuseError

    run_dir, _ = multilabel
    edited = shutil.copytree(run_dir, tmp_path / "edited")
    state = state_of(edited)
    state["calibration"] = {"method": "platt", "slopes": [1.0], "biases": [0.0]}
    (edited / "task_state.json").write_text(json.dumps(state))
    with pytest.raises(CrossfuseError, match=r"task_state.json: calibration: 1 slopes for the 4 outputs"):
        api.load(edited)


def test_calibration_off_keeps_the_raw_probabilities(tmp_path):
    from crossfuse import api

    run("--data", write_films(tmp_path / "films.npz"), "--output", tmp_path / "run", "--set", "head.calibration=false")
    assert state_of(tmp_path / "run")["calibration"] == {"method": "platt", "slopes": None, "biases": None}
    for metrics in report_of(tmp_path / "run")["splits"].values():
        assert metrics["ece"] == metrics["ece_before_scaling"]
    film = write_png(tmp_path / "film.png", np.full((32, 32), 90, dtype=np.uint8))
    predictor = api.load(tmp_path / "run")
    outputs = raw_outputs(predictor, [film])
    assert torch.allclose(outputs["probabilities"].double(), outputs["logits"].double().sigmoid(), atol=1e-7)


def test_multiclass_runs_fit_a_temperature(tmp_path):
    from crossfuse import api

    data = write_class_folders(tmp_path / "folders")
    run("--data", data, "--output", tmp_path / "run")
    scaling = state_of(tmp_path / "run")["calibration"]
    assert scaling["method"] == "temperature" and 0.05 <= scaling["temperature"] <= 20
    test = report_of(tmp_path / "run")["splits"]["test"]
    assert test["temperature"] == scaling["temperature"] and test["calibration"]["kind"] == "top-label"
    assert "ece_before_scaling" in test and test["calibration"]["before_scaling"]["ece"] == test["ece_before_scaling"]
    image = next((data / "test").rglob("*.png"))
    outputs = raw_outputs(api.load(tmp_path / "run"), [image])
    expected = (outputs["logits"] / scaling["temperature"]).softmax(-1)
    assert torch.allclose(outputs["probabilities"], expected, atol=1e-6)


def test_distillation_learns_from_the_teachers_raw_probabilities(multilabel):
    from crossfuse import api
    from crossfuse.distill import blend, soft_binary_cross_entropy

    run_dir, data = multilabel
    predictor = api.load(run_dir)
    task, model = predictor.task, predictor.model.eval()
    batch = task.collate([task.preprocess(sample, train=False) for sample in split_of(predictor, data, "train")[:8]])
    teacher = task.predict_step(model, batch)
    assert not torch.allclose(teacher["probabilities"].float(), teacher["logits"].sigmoid())  # the scaling moved them

    class Distill:
        alpha, temperature = 0.7, 2.0

    with torch.no_grad():
        loss = task.distillation_step(model, batch, teacher, Distill)
        logits = model(images=batch["images"])
        raw = blend(task.loss(logits, batch["labels"]),
                    soft_binary_cross_entropy(logits, teacher["logits"].sigmoid(), 2.0), 0.7)
        calibrated = blend(task.loss(logits, batch["labels"]),
                           soft_binary_cross_entropy(logits, teacher["probabilities"], 2.0), 0.7)
    assert torch.allclose(loss, raw) and not torch.allclose(loss, calibrated)


def test_the_fused_task_calibrates_both_inputs_and_each_alone(tmp_path):
    from crossfuse import api

    fast = ["--set", "backbones.image.name=tiny-cnn", "--set", "backbones.image.image_size=32",
            "--set", "backbones.text.name=tiny-bert", "--set", "train.progress=false", "--set", "train.batch_size=16",
            "--epochs", "1"]
    run("--data", write_films(tmp_path / "films.npz"), "--output", tmp_path / "run", task="medical-image-report",
        fast=fast)
    state = state_of(tmp_path / "run")
    assert state["calibration"]["method"] == "platt" and set(state["alone_calibration"]) == {"image", "text"}
    assert state["alone_calibration"]["image"] != state["calibration"]
    for metrics in report_of(tmp_path / "run")["splits"].values():
        assert "ece_before_scaling" in metrics and metrics["modalities"]["auroc"]["fused"]["macro"] == metrics["auroc"]
    film = write_png(tmp_path / "film.png", np.full((32, 32), 100, dtype=np.uint8))
    predictor = api.load(tmp_path / "run")
    case = predictor.task.predict_cases([str(film)], predictor._options({}))[0][1]  # no note: the image alone
    logits = predictor.task.run_batch(predictor.model, [case])["logits"].numpy()[0]
    printed = predictor.predict([str(film)])[0]
    assert printed["inputs"] == ["image"]
    assert [f["probability"] for f in printed["findings"]] == pytest.approx(
        platt(logits, state["alone_calibration"]["image"]), abs=6e-5)
    assert [f["threshold"] for f in printed["findings"]] == pytest.approx(state["alone_thresholds"]["image"], abs=1e-4)
