"""LFW readers: identity folders, both pair-list forms, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from crossfuse.errors import DataError
from crossfuse.media import load_image
from crossfuse_face.data import check_images
from crossfuse_face.lfw import FaceImage, image_path, read_identity_folders, read_pairs

from face_files import write_lines, write_people

PEOPLE = {"Alice_A": 3, "Bob_B": 2, "Carol_C": 2, "Dan_D": 1}


@pytest.fixture
def lfw(tmp_path) -> Path:
    return write_people(tmp_path / "lfw", PEOPLE)


def test_image_path_uses_lfw_naming():
    assert image_path("lfw", "George_W_Bush", 7) == Path("lfw/George_W_Bush/George_W_Bush_0007.jpg")
    assert image_path("x", "A", 12, ext=".png").name == "A_0012.png"


def test_identity_folders_are_read_in_sorted_order(lfw):
    (lfw / "Alice_A" / "notes.txt").write_text("not an image")
    (lfw / ".cache").mkdir()
    images = read_identity_folders(lfw)
    assert [i.identity for i in images] == ["Alice_A"] * 3 + ["Bob_B"] * 2 + ["Carol_C"] * 2 + ["Dan_D"]
    assert images[0] == FaceImage(str(lfw / "Alice_A" / "Alice_A_0001.jpg"), "Alice_A")
    assert [Path(i.path).name for i in images[:3]] == ["Alice_A_0001.jpg", "Alice_A_0002.jpg", "Alice_A_0003.jpg"]


def test_an_identity_with_one_image_is_an_error_when_two_are_needed(lfw):
    with pytest.raises(DataError) as error:
        read_identity_folders(lfw, min_images=2)
    message = str(error.value)
    assert "Dan_D" in message and "1 image" in message and "at least 2" in message and "matched pair" in message


@pytest.mark.parametrize("make, fragment", [
    (lambda root: None, "does not exist"),
    (lambda root: root.write_text("x"), "is not a folder"),
    (lambda root: root.mkdir(), "no identity folders"),
])
def test_a_bad_root_is_an_error(tmp_path, make, fragment):
    root = tmp_path / "faces"
    make(root)
    with pytest.raises(DataError, match=fragment):
        read_identity_folders(root)


TEN_FOLD = ["2\t2",
            "Alice_A\t1\t2", "Bob_B\t1\t2", "Alice_A\t1\tBob_B\t1", "Carol_C\t1\tDan_D\t1",
            "Alice_A 2 3", "Carol_C  1   2", "Alice_A 3 Carol_C 2", "Bob_B 2 Dan_D 1"]


def test_ten_fold_pairs_assign_folds_and_labels(lfw, tmp_path):
    pairs = read_pairs(write_lines(tmp_path / "pairs.txt", TEN_FOLD + [""]), lfw)
    assert [p.fold for p in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert pairs[2].a == str(lfw / "Alice_A" / "Alice_A_0001.jpg")
    assert pairs[2].b == str(lfw / "Bob_B" / "Bob_B_0001.jpg")
    assert pairs[5].a.endswith("Carol_C_0001.jpg") and pairs[5].b.endswith("Carol_C_0002.jpg")
    assert pairs[0].where == "pairs.txt, line 2" and pairs[-1].where == "pairs.txt, line 9"


def test_dev_form_is_one_fold(lfw, tmp_path):
    lines = ["2", "Alice_A 1 3", "Bob_B 1 2", "Alice_A 1 Dan_D 1", "Bob_B 2 Carol_C 1"]
    pairs = read_pairs(write_lines(tmp_path / "pairsDevTest.txt", lines), lfw)
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (True, 0), (False, 0), (False, 0)]
    assert pairs[0].b.endswith("Alice_A_0003.jpg")


def test_blank_lines_keep_the_real_line_numbers(lfw, tmp_path):
    path = write_lines(tmp_path / "pairs.txt", ["1 1", "", "Alice_A 1 2", "Alice_A one Bob_B 1"])
    with pytest.raises(DataError, match=r"pairs\.txt, line 4: image number 'one'"):
        read_pairs(path, lfw)


ERRORS = {
    "empty": ([], 1, "empty"),
    "header not numbers": (["ten 300"], 1, "malformed header"),
    "header three numbers": (["1 1 1", "Alice_A 1 2", "Alice_A 1 Bob_B 1"], 1, "malformed header"),
    "field count": (["1 1", "Alice_A 1", "Alice_A 1 Bob_B 1"], 2, "2 field(s)"),
    "non-integer number": (["1 1", "Alice_A 1 x2", "Alice_A 1 Bob_B 1"], 2, "'x2' is not an integer"),
    "mismatched where matched": (["1 1", "Alice_A 1 Bob_B 1", "Alice_A 1 Bob_B 1"], 2, "a mismatched line"),
    "matched where mismatched": (["1 1", "Alice_A 1 2", "Alice_A 1 2"], 3, "a matched line"),
    "too few lines": (["2 1", "Alice_A 1 2", "Alice_A 1 Bob_B 1", "Bob_B 1 2"], 4, "promises 4"),
    "too many lines": (["1 1", "Alice_A 1 2", "Alice_A 1 Bob_B 1", "Bob_B 1 2"], 4, "more pair lines"),
    "missing person": (["1 1", "Zed_Z 1 2", "Alice_A 1 Bob_B 1"], 2, "no folder for person 'Zed_Z'"),
    "missing image": (["1 1", "Alice_A 1 2", "Alice_A 1 Bob_B 9"], 3, "Bob_B_0009.jpg"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_malformed_pairs_name_file_and_line(lfw, tmp_path, case):
    lines, line, fragment = ERRORS[case]
    path = write_lines(tmp_path / "pairs.txt", lines) if lines else tmp_path / "pairs.txt"
    if not lines:
        path.write_text("")
    with pytest.raises(DataError) as error:
        read_pairs(path, lfw)
    message = str(error.value)
    assert "pairs.txt" in message and f"line {line}:" in message and fragment in message


def test_a_missing_image_error_gives_the_expected_path(lfw, tmp_path):
    path = write_lines(tmp_path / "pairs.txt", ["1 1", "Alice_A 1 7", "Alice_A 1 Bob_B 1"])
    with pytest.raises(DataError, match="expected .*Alice_A_0007.jpg"):
        read_pairs(path, lfw)


def test_a_missing_pairs_file_is_an_error(lfw, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_pairs(tmp_path / "nope.txt", lfw)


def test_an_unreadable_image_names_the_file_and_who_listed_it(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "Ann_0001.jpg")
    broken = tmp_path / "Eve_0001.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as error:
        check_images([str(tmp_path / "Ann_0001.jpg"), str(broken)], "the test pairs")
    assert "Eve_0001.jpg" in str(error.value) and "referred to by the test pairs" in str(error.value)
    with pytest.raises(DataError, match="cannot read the image"):
        load_image(tmp_path / "missing.jpg")
