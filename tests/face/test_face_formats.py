"""Face data through the dataset registry: detection, the kind each split needs, and the data keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossfuse.datasets import resolve_format
from crossfuse.errors import ConfigError, DataError
from crossfuse_face.lfw import is_identity_root, is_lfw_folder, read_lfw_pairs

from face_files import write_lines, write_people

TASK = "security-face-match"
DEV_PAIRS = ["2", "Ann_A 1 2", "Ben_B 1 2", "Ann_A 1 Ben_B 1", "Cat_C 1 Dan_D 2"]


@pytest.fixture
def people(tmp_path) -> Path:
    """Eight people with three faces each: enough to hold two of them out for validation pairs."""
    return write_people(tmp_path / "people", {f"P{i}_X": 3 for i in range(8)})


@pytest.fixture
def lfw(tmp_path) -> Path:
    """An LFW folder: identity folders and the pairs file that refers to them."""
    root = write_people(tmp_path / "lfw", {"Ann_A": 2, "Ben_B": 2, "Cat_C": 2, "Dan_D": 2})
    write_lines(root / "pairsDevTest.txt", DEV_PAIRS)
    return root


def _task(*overrides: str):
    from crossfuse.api import resolve_config, task_class

    return task_class(TASK)(resolve_config(TASK, overrides=["data.validation_pair_count=20", *overrides]))


class Options:
    image_ext = "jpg"
    images_root = None


def test_auto_detects_identity_folders_and_lfw_folders(people, lfw, tmp_path):
    assert is_identity_root(people) and not is_lfw_folder(people)
    assert is_lfw_folder(lfw) and not is_identity_root(lfw)  # its pairs file decides
    (tmp_path / "empty").mkdir()
    assert not is_identity_root(tmp_path / "empty") and not is_identity_root(lfw / "pairsDevTest.txt")
    assert resolve_format(TASK, people).name == "identity-folders"
    assert resolve_format(TASK, lfw).name == "lfw-pairs"
    assert resolve_format(TASK, lfw / "pairsDevTest.txt").name == "lfw-pairs"


def test_an_lfw_folder_is_read_through_its_pairs_file(lfw, tmp_path):
    pairs = read_lfw_pairs(lfw, Options())
    assert [p.same for p in pairs] == [True, True, False, False]
    assert pairs[0].a == str(lfw / "Ann_A" / "Ann_A_0001.jpg") and pairs[0].where == "pairsDevTest.txt, line 2"
    write_lines(lfw / "pairs.txt", ["1 1", "Cat_C 1 2", "Ann_A 2 Dan_D 1"])
    assert len(read_lfw_pairs(lfw, Options())) == 2  # the 10-fold file is LFW's reported protocol: it comes first


def test_the_image_root_of_pairs_can_lie_elsewhere(lfw, tmp_path):
    (tmp_path / "lists").mkdir()
    pairs_file = write_lines(tmp_path / "lists" / "pairs.txt", ["1 1", "Ann_A 1 2", "Ann_A 1 Ben_B 2"])
    options = Options()
    options.images_root = str(lfw)
    assert read_lfw_pairs(pairs_file, options)[1].b == str(lfw / "Ben_B" / "Ben_B_0002.jpg")
    with pytest.raises(DataError, match="no folder for person 'Ann_A'"):
        read_lfw_pairs(pairs_file, Options())


def test_training_on_pairs_says_which_format_to_set(lfw):
    with pytest.raises(DataError) as error:
        _task(f"data.train={lfw}").load_data()
    message = str(error.value)
    assert "data.train" in message and "'lfw-pairs'" in message and "pairs of images" in message
    assert "data.format" in message and "identity folders" in message


def test_an_lfw_folder_trains_with_data_format_identity_folders(lfw):
    task = _task(f"data.train={lfw}", "data.format=identity-folders", f"data.validation={lfw}")
    data = task.load_data()
    assert task.identities == ["Ann_A", "Ben_B", "Cat_C", "Dan_D"] and len(data.train) == 8
    assert len(data.validation.pairs) == 4 and data.test is None


def test_pairs_where_identities_are_needed_and_the_reverse(people, lfw):
    with pytest.raises(DataError, match=r"data.test .*'identity-folders'.*face images by identity.*data.pairs_format"):
        _task(f"data.train={people}", f"data.test={people}").load_data()


def test_today_s_key_names_keep_working(people, lfw):
    new = _task(f"data.train={people}", f"data.test={lfw}", "data.validation_fraction=0.25").load_data()
    old = _task(f"data.train={people}", f"data.test_pairs={lfw}", "data.validation_identities=0.25",
                "data.validation_fraction=0.5").load_data()  # the older name wins when it is set
    assert old.test.pairs == new.test.pairs and old.validation.pairs == new.validation.pairs
    assert len(new.train) == 18  # 2 of 8 people held out for validation pairs
    with pytest.raises(ConfigError, match="data.test_pairs is its older name"):
        _task(f"data.train={people}", f"data.test={lfw}", f"data.test_pairs={lfw / 'pairsDevTest.txt'}").load_data()


def test_data_path_trains_on_identity_folders(people):
    from crossfuse.api import resolve_config, task_class

    task = task_class(TASK)(resolve_config(TASK, data=str(people)))
    assert task.config.data.train == str(people)
    assert {image.identity for image in task.load_data().train} <= {f"P{i}_X" for i in range(8)}


def test_test_pairs_can_be_carved_from_training_identities(people):
    data = _task(f"data.train={people}", "data.test_fraction=0.25").load_data()
    test_people = {Path(p).parent.name for p in data.test.images}
    validation_people = {Path(p).parent.name for p in data.validation.images}
    training_people = {image.identity for image in data.train}
    assert len(test_people) == 2 and len(validation_people) == 2 and len(training_people) == 4
    assert not (test_people & validation_people) and not (training_people & (test_people | validation_people))


def test_an_unknown_pairs_format_names_the_key(people):
    with pytest.raises(ConfigError, match="data.pairs_format: unknown format 'xlsx'.*lfw-pairs"):
        _task(f"data.train={people}", "data.pairs_format=xlsx").load_data()


def test_the_demo_is_read_by_the_registered_readers():
    task = _task("data.demo.train_identities=4", "data.demo.train_images=3", "data.demo.test_identities=4",
                 "data.demo.test_images=2", "data.demo.size=16", "data.demo.folds=1", "data.demo.pairs_per_fold=2",
                 "data.validation_fraction=0.5", "data.validation_pair_count=4")
    paths = task.demo_paths()
    assert (Path(paths["test"]) / "pairs.txt").is_file() and is_identity_root(paths["train"])
    data = task.load_data()
    assert len(data.test.pairs) == 4 and data.info == {"identities": 2, "images": 6}


def test_drawn_validation_pairs_are_distinct_and_half_matched():
    from crossfuse_face.data import hold_out
    from crossfuse_face.lfw import FaceImage

    def faces(people: int, each: int) -> list[FaceImage]:
        return [FaceImage(f"/faces/P{p}/{i}.jpg", f"P{p}") for p in range(people) for i in range(each)]

    def distinct(pairs) -> int:
        return len({frozenset((pair.a, pair.b)) for pair in pairs})

    kept, pairs = hold_out(faces(40, 12), 0.25, 600, seed=0)
    assert len(kept) == 30 * 12 and len(pairs) == 600 and distinct(pairs) == 600
    assert sum(pair.same for pair in pairs) == 300
    assert all((pair.a.split("/")[2] == pair.b.split("/")[2]) == pair.same for pair in pairs)
    # Two held-out people with three faces each hold 6 matched pairs: all of them, none twice.
    _, few = hold_out(faces(8, 3), 0.25, 40, seed=0)
    matched = [pair for pair in few if pair.same]
    assert len(matched) == 6 == distinct(matched)
    assert distinct(few) == len(few)
