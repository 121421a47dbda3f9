"""The medical dataset readers on small files written here: MedMNIST .npz, image folders, CSV tables,
DICOM folders; their layout tests; and every malformed input as a DataError naming file and item."""

from __future__ import annotations

import numpy as np
import pytest

from crossfuse.datasets import Splits
from crossfuse.errors import DataError, DataWarning
from crossfuse_medical.config import MedicalDataConfig
from crossfuse_medical.formats import (
    is_dicom_folder,
    is_image_csv,
    is_image_folder,
    is_medmnist,
    read_dicom_folder,
    read_image_csv,
    read_image_folder,
    read_medmnist,
)
from crossfuse_medical.images import load_pixels

from medical_files import medmnist_arrays, write_csv, write_dicom, write_npz, write_png


def options(**values):
    return MedicalDataConfig(**values)


# -- MedMNIST .npz -------------------------------------------------------------------------------


def test_npz_multiclass_grey_gives_three_splits_with_in_memory_pixels(tmp_path):
    arrays = medmnist_arrays()
    splits = read_medmnist(write_npz(tmp_path / "blood.npz", **arrays), options())
    assert isinstance(splits, Splits) and [len(s) for s in (splits.train, splits.validation, splits.test)] == [4, 2, 3]
    sample = splits.train[1]
    assert sample.labels == (1,) and sample.classes == ("0", "1", "2") and sample.channels == 1
    assert sample.where == f"{tmp_path / 'blood.npz'}, train_images[1]" and sample.note is None
    assert np.array_equal(load_pixels(sample), arrays["train_images"][1])


def test_npz_multilabel_rgb_with_names_and_notes(tmp_path):
    labels = {"train": np.array([[1, 0, 1], [0, 0, 0]]), "val": np.array([[0, 1, 0]]), "test": np.array([[1, 1, 1]])}
    arrays = medmnist_arrays(labels, channels=3, count=(2, 1, 1))
    notes = {f"{p}_notes": np.array([f"note {p} {i}" for i in range(n)]) for p, n in (("train", 2), ("val", 1),
                                                                                         ("test", 1))}
    path = write_npz(tmp_path / "chest.npz", **arrays, **notes, label_names=np.array(["a", "b", "c"]))
    splits = read_medmnist(path, options())
    assert splits.train[0].labels == (1, 0, 1) and splits.train[0].classes == ("a", "b", "c")
    assert splits.test[0].note == "note test 0" and splits.train[0].channels == 3
    assert load_pixels(splits.validation[0]).shape == (28, 28, 3)


def test_npz_names_from_the_config_and_a_missing_val_split(tmp_path):
    arrays = {k: v for k, v in medmnist_arrays().items() if not k.startswith("val")}
    splits = read_medmnist(write_npz(tmp_path / "x.npz", **arrays), options(labels=["a", "b", "c", "d"]))
    assert splits.validation is None and splits.train[0].classes == ("a", "b", "c", "d")


def test_npz_grey_with_a_channel_axis_and_one_dimensional_labels(tmp_path):
    arrays = medmnist_arrays()
    arrays["train_images"] = arrays["train_images"][..., None]
    arrays["train_labels"] = arrays["train_labels"][:, 0]
    splits = read_medmnist(write_npz(tmp_path / "x.npz", **arrays))
    assert load_pixels(splits.train[0]).shape == (28, 28) and splits.train[2].labels == (2,)


@pytest.mark.parametrize("change, message", [
    (lambda a: [a.update({"x_" + k: a.pop(k)}) for k in list(a)], r"no train_images/train_labels arrays \(found: x_"),
    (lambda a: a.pop("train_images"), r"train_images is missing while the other train_\* array is there"),
    (lambda a: a.pop("test_labels"), r"test_labels is missing"),
    (lambda a: a.update(train_images=np.zeros((4, 28, 28, 2), np.uint8)), r"train_images has shape \(4, 28, 28, 2\)"),
    (lambda a: a.update(val_images=np.zeros((2, 28, 28, 28, 1), np.uint8)), r"val_images has shape .*3D volumes"),
    (lambda a: a.update(train_images=np.zeros((4, 28, 28), np.float32)), r"train_images is float32; expected uint8"),
    (lambda a: a.update(test_labels=np.zeros((2, 1), np.uint8)), r"test_labels has shape \(2, 1\); expected \[3, L\]"),
    (lambda a: a.update(val_labels=np.array([[0], [-1]])), r"val_labels\[1, 0\] is -1; expected a class id"),
    (lambda a: a.update(train_labels=np.array([[0, 1], [1, 2], [0, 0], [1, 1]]), val_labels=np.zeros((2, 2)),
                        test_labels=np.zeros((3, 2))), r"train_labels\[1, 1\] is 2; expected 0 or 1"),
    (lambda a: a.update(val_labels=np.zeros((2, 3))), r"disagree on the number of labels per image"),
    (lambda a: a.update(train_labels=np.array([[0.5], [1], [0], [1]])), r"train_labels is float64 with non-integer"),
])
def test_npz_bad_keys_shapes_and_labels_name_the_file_and_array(tmp_path, change, message):
    arrays = medmnist_arrays()
    change(arrays)
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as error:
        read_medmnist(path, options())
    assert "bad.npz" in str(error.value)


def test_npz_labels_out_of_range_of_the_named_classes(tmp_path):
    path = write_npz(tmp_path / "x.npz", **medmnist_arrays())
    with pytest.raises(DataError, match=r"x\.npz: train_labels\[2\] is class 2, out of range for the 2 classes "
                                        r"of data\.labels \(a, b\)"):
        read_medmnist(path, options(labels=["a", "b"]))


def test_a_corrupt_npz_is_a_data_error(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"broken\.npz: not a readable \.npz file"):
        read_medmnist(path, options())
    assert not is_medmnist(path)


# -- image folders -------------------------------------------------------------------------------


def make_folder(root, layout):
    for relative in layout:
        write_png(root / relative)
    return root


def test_image_folder_with_splits_and_classes_over_all_splits(tmp_path):
    root = make_folder(tmp_path / "xray", ["train/NORMAL/a.png", "train/PNEUMONIA/b.jpeg", "train/PNEUMONIA/c.png",
                                           "val/NORMAL/d.png", "test/PNEUMONIA/sub/e.png", "test/COVID/f.png"])
    (root / "train" / "NORMAL" / "Thumbs.db").write_bytes(b"x")
    splits = read_image_folder(root, options())
    assert [s.labels for s in splits.train] == [(1,), (2,), (2,)]
    assert splits.train[0].classes == ("COVID", "NORMAL", "PNEUMONIA")
    assert [s.source for s in splits.test] == [str(root / "test/COVID/f.png"), str(root / "test/PNEUMONIA/sub/e.png")]
    assert len(splits.validation) == 1 and is_image_folder(root)


def test_image_folder_of_classes_is_one_split_in_the_configured_order(tmp_path):
    root = make_folder(tmp_path / "derm", ["benign/a.png", "malignant/b.png"])
    samples = read_image_folder(root, options(labels=["malignant", "benign"]))
    assert [(s.labels, s.classes) for s in samples] == [((1,), ("malignant", "benign")), ((0,), ("malignant", "benign"))]
    assert is_image_folder(root)


def test_image_folder_errors(tmp_path):
    root = make_folder(tmp_path / "a", ["train/x/1.png", "val/x/2.png"])
    (root / "train" / "y").mkdir()
    with pytest.raises(DataError, match=r"train/y: empty class folder"):
        read_image_folder(root, options())
    root = make_folder(tmp_path / "b", ["x/1.png", "y/2.png"])
    with pytest.raises(DataError, match=r"class folders \(x, y\) differ from data\.labels \(x, z\)"):
        read_image_folder(root, options(labels=["x", "z"]))
    write_png(root / "stray.png")
    with pytest.raises(DataError, match=r"stray\.png: an image outside any class folder"):
        read_image_folder(root, options())


def test_a_corrupt_image_in_a_folder_is_named(tmp_path):
    root = make_folder(tmp_path / "c", ["x/1.png", "y/2.png"])
    (root / "y" / "3.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match=r"y/3\.png: cannot read the image"):
        read_image_folder(root, options())


# -- CSV tables ----------------------------------------------------------------------------------


def test_csv_with_class_names_paths_relative_to_the_table_and_notes(tmp_path):
    write_png(tmp_path / "img" / "a.png")
    write_png(tmp_path / "img" / "b.png")
    path = write_csv(tmp_path / "train.csv", ["image", "diagnosis", "note"],
                     [["img/a.png", "pneumonia", "fever, ?consolidation"], ["img/b.png", "normal", ""]])
    samples = read_image_csv(path, options(label_columns=["diagnosis"]))
    assert [(s.labels, s.note) for s in samples] == [((1,), "fever, ?consolidation"), ((0,), None)]
    assert samples[0].classes == ("normal", "pneumonia") and samples[1].where == f"{path}, line 3"
    assert is_image_csv(path)


def test_csv_class_ids_named_by_the_config_and_an_image_root(tmp_path):
    write_png(tmp_path / "images" / "a.png")
    path = write_csv(tmp_path / "tables" / "t.csv", ["path", "label"], [["a.png", "2"], ["a.png", "0"]])
    samples = read_image_csv(path, options(labels=["x", "y", "z"], image_root=str(tmp_path / "images")))
    assert [s.labels for s in samples] == [(2,), (0,)] and samples[0].classes == ("x", "y", "z")


def test_csv_multilabel_columns_and_chexpert_uncertain_values(tmp_path):
    write_png(tmp_path / "a.png")
    path = write_csv(tmp_path / "t.csv", ["Path", "Effusion", "Nodule", "Sex"],
                     [["a.png", "1.0", "0", "F"], ["a.png", "-1", "", "M"]])
    with pytest.raises(DataError, match=r"t\.csv, line 3, column 'Effusion': uncertain \(-1\).*data\.uncertain_as"):
        read_image_csv(path, options(labels=["Effusion", "Nodule"]))
    samples = read_image_csv(path, options(labels=["Effusion", "Nodule"], uncertain_as=1))
    assert [s.labels for s in samples] == [(1, 0), (1, 1)] and samples[0].classes == ("Effusion", "Nodule")


def test_csv_findings_in_one_column_chestxray14_style(tmp_path):
    write_png(tmp_path / "a.png")
    path = write_csv(tmp_path / "Data_Entry.csv", ["Image Index", "Finding Labels"],
                     [["a.png", "Cardiomegaly|Effusion"], ["a.png", "No Finding"], ["a.png", "Effusion"]])
    samples = read_image_csv(path, options(label_columns=["Finding Labels"], label_separator="|"))
    assert [s.labels for s in samples] == [(1, 1), (0, 0), (0, 1)]
    assert samples[0].classes == ("Cardiomegaly", "Effusion")


@pytest.mark.parametrize("rows, chosen, message", [
    ([["missing.png", "a"]], {}, r"t\.csv, line 2: image .*missing\.png does not exist"),
    ([["a.png", ""]], {}, r"t\.csv, line 2: column 'label' is empty"),
    ([["a.png", "b"], ["a.png", "c"]], {"labels": ["b", "x"]}, r"t\.csv, line 3: class 'c' in column 'label' is not"),
    ([["a.png", "3"]], {"labels": ["b", "x"]}, r"t\.csv, line 2: class id 3 in column 'label' is out of range"),
    ([["a.png", "a"]], {"label_columns": ["grade"]}, r"t\.csv: no column 'grade'"),
    ([["a.png", "a"]], {"image_column": "file"}, r"t\.csv: no column 'file' \(data\.image_column\)"),
    ([["a.png", "a", "extra"]], {}, r"t\.csv, line 2: 3 values for 2 columns"),
    ([], {}, r"t\.csv: the table has a header but no rows"),
])
def test_csv_errors_name_the_file_and_line(tmp_path, rows, chosen, message):
    write_png(tmp_path / "a.png")
    path = write_csv(tmp_path / "t.csv", ["image", "label"], rows)
    with pytest.raises(DataError, match=message):
        read_image_csv(path, options(**chosen))


def test_csv_may_name_dicom_files(tmp_path):
    write_dicom(tmp_path / "a.dcm", np.array([[0, 100], [200, 300]], np.uint16), window=(150, 301))
    path = write_csv(tmp_path / "t.csv", ["file", "label"], [["a.dcm", "effusion"]])
    (sample,) = read_image_csv(path, options())
    assert sample.channels == 1 and load_pixels(sample).tolist() == [[0, 85], [170, 255]]


def test_csv_without_a_recognisable_label_column_says_what_to_set(tmp_path):
    write_png(tmp_path / "a.png")
    path = write_csv(tmp_path / "t.csv", ["image", "grade"], [["a.png", "1"]])
    with pytest.raises(DataError, match=r"cannot tell which column holds the labels.*Set data\.label_columns"):
        read_image_csv(path, options())


# -- DICOM folders -------------------------------------------------------------------------------


def dicom_folder(root):
    images = {}
    for name, uid in (("p1/a.dcm", "1.2.3.1"), ("p2/b.dcm", "1.2.3.2"), ("c.dcm", "1.2.3.3")):
        images[name] = write_dicom(root / name, np.full((4, 4), 100, np.uint16), uid=uid)
    return images


def test_dicom_folder_labelled_by_file_name(tmp_path):
    root = tmp_path / "dx"
    dicom_folder(root)
    write_csv(root / "labels.csv", ["file", "label"], [["a.dcm", "normal"], ["p2/b.dcm", "effusion"], ["c", "normal"]])
    samples = read_dicom_folder(root, options())
    assert [(s.source, s.labels) for s in samples] == [(str(root / "p1/a.dcm"), (1,)), (str(root / "p2/b.dcm"), (0,)),
                                                        (str(root / "c.dcm"), (1,))]
    assert samples[0].classes == ("effusion", "normal") and samples[0].where == f"{root / 'labels.csv'}, line 2"
    assert is_dicom_folder(root) and not is_image_folder(root)


def test_dicom_folder_labelled_by_sop_instance_uid_with_a_warning_for_unlabelled_files(tmp_path):
    root = tmp_path / "dx"
    dicom_folder(root)
    labels = write_csv(tmp_path / "elsewhere.csv", ["SOPInstanceUID", "Nodule", "Effusion"],
                       [["1.2.3.3", "1", "0"], ["1.2.3.1", "0", "1"]])
    with pytest.warns(DataWarning, match=r"1 DICOM file\(s\) have no row in the labels CSV.*b\.dcm"):
        samples = read_dicom_folder(root, options(labels_csv=str(labels), label_columns=["Nodule", "Effusion"]))
    assert [(s.source, s.labels) for s in samples] == [(str(root / "c.dcm"), (1, 0)), (str(root / "p1/a.dcm"), (0, 1))]


def test_dicom_folder_row_naming_a_missing_file(tmp_path):
    root = tmp_path / "dx"
    dicom_folder(root)
    write_csv(root / "labels.csv", ["file", "label"], [["a.dcm", "x"], ["zzz.dcm", "y"]])
    with pytest.raises(DataError, match=r"labels\.csv, line 3: no DICOM file in .* has the file name 'zzz\.dcm'"):
        read_dicom_folder(root, options(dicom_key="file"))


def test_dicom_folder_needs_its_labels_table(tmp_path):
    root = tmp_path / "dx"
    dicom_folder(root)
    with pytest.raises(DataError, match=r"expected one \.csv of labels in the DICOM folder \(found none\)"):
        read_dicom_folder(root, options())


def test_dicom_folder_with_a_pixel_less_file_is_refused(tmp_path):
    root = tmp_path / "dx"
    dicom_folder(root)
    write_dicom(root / "sr.dcm", np.zeros((2, 2), np.uint16), pixel_data=False)
    write_csv(root / "labels.csv", ["file", "label"], [["a.dcm", "x"]])
    with pytest.raises(DataError, match=r"sr\.dcm: the DICOM file holds no pixel data"):
        read_dicom_folder(root, options())


def test_dicom_files_in_class_folders_are_an_image_folder(tmp_path):
    write_dicom(tmp_path / "ds" / "normal" / "a.dcm", np.zeros((4, 4), np.uint16))
    write_dicom(tmp_path / "ds" / "nodule" / "b.dcm", np.ones((4, 4), np.uint16))
    assert is_image_folder(tmp_path / "ds") and not is_dicom_folder(tmp_path / "ds")
    samples = read_image_folder(tmp_path / "ds", options())
    assert [s.labels for s in samples] == [(0,), (1,)] and samples[0].classes == ("nodule", "normal")


def test_layout_tests_reject_what_they_do_not_read(tmp_path):
    npz = write_npz(tmp_path / "other.npz", x=np.zeros(3))
    png = write_png(tmp_path / "one.png")
    assert not is_medmnist(npz) and not is_medmnist(png) and not is_image_csv(png)
    assert not is_image_folder(png) and not is_dicom_folder(tmp_path / "nothing")
    assert is_medmnist(write_npz(tmp_path / "m.npz", **medmnist_arrays()))
