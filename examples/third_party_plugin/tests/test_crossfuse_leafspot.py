"""Tests of crossfuse-leafspot, run against the installed package.

    crossfuse install -e .            # or pip install -e ".[test]"
    python -m pytest
"""

from __future__ import annotations

import importlib.resources
import json
import random
from types import SimpleNamespace

import numpy as np
import pytest

from crossfuse.datasets import Splits, read
from crossfuse.errors import CrossfuseError, DataError
from crossfuse.testing import heavy_imports, make_dataset, make_images, run_cli, smoke_fit

TASK = "leaf-disease"


# -- registration ------------------------------------------------------------------------------


def test_registering_the_plugin_imports_nothing_heavy():
    assert heavy_imports("crossfuse_leafspot") == []


def test_the_plugin_registers_one_of_each_and_passes_the_checks():
    result = run_cli("plugins", "--check", "--json")
    assert result.returncode == 0, result.stderr
    plugin = {p["name"]: p for p in json.loads(result.stdout)}["leafspot"]
    assert plugin["error"] is None and plugin["problems"] == []
    assert plugin["registered"] == {"backbones": ["leaf-cnn"], "tasks": [TASK],
                                    "datasets": ["plantvillage", "leaf-csv"], "metrics": ["missed-disease"]}
    assert "register_commands" in plugin["hooks"]


def test_the_default_config_is_inside_the_installed_package():
    assert (importlib.resources.files("crossfuse_leafspot") / "defaults.yaml").is_file()


# -- data ----------------------------------------------------------------------------------------

PLANTVILLAGE = ["Tomato___Early_blight", "Corn_(maize)___Common_rust_", "Tomato___healthy", "Background_without_leaves"]


def plantvillage_folder(root):
    """A small PlantVillage tree with train/ and valid/ splits (and the augmented release's background class)."""
    for split in ("train", "valid"):
        make_images(root / split, labels=PLANTVILLAGE, per_label=2, size=24)
    return root


def test_plantvillage_folders_are_detected_and_their_quirks_smoothed(tmp_path):
    data = read(TASK, plantvillage_folder(tmp_path), "auto", None)
    assert isinstance(data, Splits) and data.test is None
    assert sorted({example.label for example in data.train}) == ["common_rust", "early_blight", "healthy"]
    assert len(data.validation) == 6  # Background_without_leaves is not a class


def test_plantvillage_labels_can_keep_the_crop(tmp_path):
    data = read(TASK, plantvillage_folder(tmp_path), "plantvillage", SimpleNamespace(label_from="crop_disease"))
    assert sorted({example.label for example in data.train}) == ["corn/common_rust", "tomato/early_blight",
                                                                  "tomato/healthy"]


def test_a_folder_that_is_not_crop_disease_is_named_in_the_error(tmp_path):
    make_images(tmp_path, labels=["Tomato___healthy", "Tomato_Early_blight"], per_label=1, size=24)
    with pytest.raises(DataError, match=r"Tomato_Early_blight: not a PlantVillage class folder"):
        read(TASK, tmp_path, "plantvillage", None)


def test_a_csv_manifest_is_read_and_a_bad_row_names_its_line(tmp_path):
    manifest = make_dataset("image", tmp_path, labels=["healthy", "common_rust"], per_label=3, size=24)
    assert [example.label for example in read(TASK, manifest, "auto", None)] == ["healthy"] * 3 + ["common_rust"] * 3
    with open(manifest, "a", encoding="utf-8") as handle:
        handle.write("missing.png,healthy\n")
    with pytest.raises(DataError, match=r"data\.csv, line 8: no such file 'missing.png'"):
        read(TASK, manifest, "auto", None)


# -- metric, backbone, command -------------------------------------------------------------------


def test_missed_disease_counts_diseased_leaves_called_healthy():
    from crossfuse_leafspot.metrics import missed_disease

    task = SimpleNamespace(name=TASK, label_names=["common_rust", "early_blight", "healthy"])
    labels = np.array([0, 1, 1, 2])
    probabilities = np.eye(3)[[2, 1, 2, 0]]  # rust missed, one blight found, one missed; healthy flagged
    assert missed_disease(probabilities, labels, task) == pytest.approx(2 / 3)
    with pytest.raises(CrossfuseError, match="needs a label called 'healthy'"):
        missed_disease(probabilities, labels, SimpleNamespace(name="x", label_names=["a", "b", "c"]))


def test_leaf_cnn_takes_photos_through_its_transform():
    import torch
    from PIL import Image

    from crossfuse import get_backbone

    backbone = get_backbone("leaf-cnn", image_size=48)
    image = backbone.transform(Image.new("RGB", (120, 80), (60, 140, 50)))
    assert image.shape == (3, 48, 48) and 0 <= float(image.min()) <= float(image.max()) <= 1
    assert backbone(images=torch.stack([image, image])).shape == (2, backbone.feature_dim)


def test_severity_grades_diseased_leaves_above_healthy_ones(tmp_path):
    from crossfuse_leafspot.demo import draw_leaf
    from crossfuse_leafspot.severity import horsfall_barratt

    rng = random.Random(0)
    (tmp_path / "rust").mkdir()
    for number in range(3):
        draw_leaf("Corn_(maize)", "common_rust", rng).save(tmp_path / "rust" / f"{number}.png")
    draw_leaf("Squash", "healthy", random.Random(1)).save(tmp_path / "healthy.png")
    result = run_cli("leafspot-severity", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    by_file = {row["input"].split("/")[-1]: row for row in json.loads(result.stdout)}
    assert len(by_file) == 4  # the folder's subfolders too
    assert by_file["healthy.png"]["severity_percent"] < 1.0
    assert min(by_file[f"{n}.png"]["severity_percent"] for n in range(3)) > 3.0  # Horsfall-Barratt grade 3 and up
    assert [horsfall_barratt(p) for p in (0, 2.9, 3.1, 49, 99.5, 100)] == [1, 2, 3, 6, 11, 12]


# -- a short run and predictions ----------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch on a small demo set, with the plugin's own backbone."""
    return smoke_fit(TASK, tmp_path_factory.mktemp("fit") / "run", backbone="leaf-cnn",
                     overrides=["data.demo_per_class=6", "backbone.image_size=48"])


def test_a_short_run_reports_the_growers_metric_and_the_baseline(run):
    test = run.report["splits"]["test"]
    assert 0.0 <= test["macro_f1"] <= 1.0 and 0.0 <= test["missed-disease"] <= 1.0
    assert run.report["data"]["labels"] == ["common_rust", "early_blight", "healthy", "powdery_mildew"]
    assert run.report["baseline"]["name"] == "majority-label"


def test_predict_finds_photos_in_subfolders_and_says_diseased(run, tmp_path):
    make_images(tmp_path, labels=["field-a", "field-b"], per_label=1, size=24)
    result = run_cli("predict", run.run_dir, tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert len(predictions) == 2
    assert all(p["diseased"] == (p["label"] != "healthy") for p in predictions)
