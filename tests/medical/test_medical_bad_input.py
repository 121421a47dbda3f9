"""Bad input through the CLI: a message naming the file and the item, exit code 2, no traceback, and
no run directory written."""

from __future__ import annotations

import numpy as np
import pytest

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli
from medical_files import medmnist_arrays, write_csv, write_dicom, write_npz, write_png

FAST = ["--set", "backbone.name=tiny-cnn", "--set", "backbone.image_size=32", "--set", "train.progress=false",
        "--epochs", "1"]


def refused(tmp_path, data, *phrases, extra=()):
    result = cli("run", "medical-imaging", "--data", data, "--output", tmp_path / "run", *FAST, *extra)
    assert_usage_error(result, *phrases)
    assert not (tmp_path / "run").exists()


def test_wrong_npz_keys(tmp_path):
    arrays = medmnist_arrays()
    arrays["x_train"] = arrays.pop("train_images")
    refused(tmp_path, write_npz(tmp_path / "bad.npz", **arrays), "bad.npz", "train_images")


def test_npz_labels_out_of_range(tmp_path):
    arrays = medmnist_arrays(labels={"train": np.array([[0], [1], [2], [1]]), "val": np.array([[0], [1]]),
                                     "test": np.array([[0], [5], [1]])})
    arrays["label_names"] = np.array(["normal", "effusion", "nodule"])
    refused(tmp_path, write_npz(tmp_path / "bad.npz", **arrays), "test_labels[1] is class 5", "out of range")


def test_multilabel_values_other_than_0_and_1(tmp_path):
    labels = {split: np.zeros((n, 3), dtype=np.uint8) for split, n in (("train", 4), ("val", 2), ("test", 3))}
    labels["train"][2, 1] = 2
    refused(tmp_path, write_npz(tmp_path / "bad.npz", **medmnist_arrays(labels=labels)), "train_labels[2, 1] is 2")


def test_a_validation_class_training_never_saw(tmp_path):
    write_csv(tmp_path / "train.csv", ["image", "label"],
              [[write_png(tmp_path / f"t{i}.png").name, ["normal", "effusion"][i % 2]] for i in range(6)])
    write_csv(tmp_path / "val.csv", ["image", "label"], [["t0.png", "normal"], ["t1.png", "nodule"]])
    refused(tmp_path, tmp_path / "train.csv", "val.csv, line 3", "'nodule' does not occur in training",
            extra=["--set", f"data.validation={tmp_path / 'val.csv'}"])


def test_a_corrupt_image(tmp_path):
    for split in ("train", "val"):
        for label in ("normal", "effusion"):
            write_png(tmp_path / "folder" / split / label / "a.png")
    (tmp_path / "folder" / "train" / "effusion" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    refused(tmp_path, tmp_path / "folder", "broken.png", "cannot read the image")


def test_a_truncated_image(tmp_path):
    for split in ("train", "val"):
        for label in ("normal", "effusion"):
            write_png(tmp_path / "folder" / split / label / "a.png", np.random.default_rng(0).integers(
                0, 255, (40, 40), dtype=np.uint8))
    whole = (tmp_path / "folder" / "val" / "normal" / "a.png").read_bytes()
    (tmp_path / "folder" / "val" / "normal" / "a.png").write_bytes(whole[: len(whole) // 2])
    refused(tmp_path, tmp_path / "folder", "val/normal/a.png", "cannot read the image")


def test_a_dicom_file_without_pixels(tmp_path):
    pixels = np.zeros((16, 16), dtype=np.uint16)
    for i in range(4):
        write_dicom(tmp_path / "dicom" / f"{i}.dcm", pixels, pixel_data=i != 2)
    write_csv(tmp_path / "dicom" / "labels.csv", ["file", "label"], [[f"{i}.dcm", i % 2] for i in range(4)])
    refused(tmp_path, tmp_path / "dicom", "2.dcm", "no pixel data")


def test_an_empty_class_folder(tmp_path):
    write_png(tmp_path / "folder" / "train" / "normal" / "a.png")
    write_png(tmp_path / "folder" / "val" / "normal" / "a.png")
    (tmp_path / "folder" / "train" / "effusion").mkdir()
    refused(tmp_path, tmp_path / "folder", "train/effusion", "empty class folder")


def test_a_csv_naming_a_missing_file(tmp_path):
    write_png(tmp_path / "a.png")
    write_csv(tmp_path / "labels.csv", ["image", "label"], [["a.png", "normal"], ["gone.png", "effusion"]])
    refused(tmp_path, tmp_path / "labels.csv", "labels.csv, line 3", "gone.png does not exist")


@pytest.mark.parametrize("option, phrase", [("data.threshold=best", "data.threshold must be one of"),
                                            ("data.window_center=40", "window_center and data.window_width go together"),
                                            ("head.pos_weight=maybe", "head.pos_weight must be bool")])
def test_bad_config_values(tmp_path, option, phrase):
    write_png(tmp_path / "a.png")
    write_csv(tmp_path / "labels.csv", ["image", "label"], [["a.png", "normal"], ["a.png", "effusion"]])
    refused(tmp_path, tmp_path / "labels.csv", phrase, extra=["--set", option])


def test_predict_on_a_file_that_is_not_an_image(tmp_path):
    from medical_files import write_films

    data = write_films(tmp_path / "films.npz", 24, 8, 8)
    assert cli("run", "medical-imaging", "--data", data, "--output", tmp_path / "run", *FAST).returncode == 0
    (tmp_path / "notes.txt").write_text("not an image")
    assert_usage_error(cli("predict", tmp_path / "run", tmp_path / "notes.txt"), "notes.txt", "not an image file")
    (tmp_path / "empty").mkdir()
    assert_usage_error(cli("predict", tmp_path / "run", tmp_path / "empty"), "empty", "no .bmp, .dcm")
    assert_usage_error(cli("eval", tmp_path / "run", "--data", data, "--split", "holdout"), "unknown split")
