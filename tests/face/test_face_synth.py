"""The synthetic LFW-style data set: reproducible, readable by the LFW readers, and carrying identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossfuse.media import load_image
from crossfuse_face.lfw import read_identity_folders, read_pairs
from crossfuse_face.synth import make_names, write_demo_dataset

TINY = {"train_identities": 4, "train_images": 3, "test_identities": 6, "test_images": 3, "size": 32,
        "folds": 2, "pairs_per_fold": 3}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return write_demo_dataset(tmp_path_factory.mktemp("faces"), seed=0, **TINY)


def test_one_seed_gives_byte_identical_files(tiny, tmp_path):
    again = write_demo_dataset(tmp_path / "again", seed=0, **TINY)
    assert _files(Path(tiny["root"])) == _files(Path(again["root"]))


def test_another_seed_gives_other_people(tiny, tmp_path):
    other = write_demo_dataset(tmp_path / "other", seed=1, **TINY)
    first, second = _files(Path(tiny["root"])), _files(Path(other["root"]))
    assert set(first) != set(second)
    assert sorted(first.values()) != sorted(second.values())


def test_more_training_people_keep_the_same_test_set(tiny, tmp_path):
    larger = write_demo_dataset(tmp_path / "larger", seed=0, **{**TINY, "train_identities": 9})
    assert _files(Path(larger["test"])) == _files(Path(tiny["test"]))
    assert len(read_identity_folders(larger["train"])) > len(read_identity_folders(tiny["train"]))


def test_summary_and_layout(tiny):
    assert tiny["train_images"] == 12 and tiny["test_images"] == 18
    train, test = read_identity_folders(tiny["train"], min_images=2), read_identity_folders(tiny["test"], min_images=2)
    assert len(train) == 12 and len(test) == 18
    assert load_image(train[0].path).size == (32, 32)
    assert Path(tiny["pairs"]).read_text().splitlines()[0] == "2\t3"
    assert Path(tiny["pairs_dev_test"]).read_text().splitlines()[0] == "6"


def test_train_and_test_identities_are_disjoint(tiny):
    train = {i.identity for i in read_identity_folders(tiny["train"])}
    test = {i.identity for i in read_identity_folders(tiny["test"])}
    assert len(train) == 4 and len(test) == 6 and not train & test


def test_names_look_like_lfw():
    names = make_names(200, seed=3)
    assert len(set(names)) == 200
    assert all(n.isascii() and n.replace("_", "").isalpha() and n[0].isupper() and "_" in n for n in names)


def _identity(path: str) -> str:
    return Path(path).parent.name


def test_both_pair_files_read_back_with_the_same_pairs(tiny):
    ten_fold = read_pairs(tiny["pairs"], tiny["test"])
    dev = read_pairs(tiny["pairs_dev_test"], tiny["test"])
    assert [p.fold for p in ten_fold] == [0] * 6 + [1] * 6 and {p.fold for p in dev} == {0}
    assert [p.same for p in dev] == [True] * 6 + [False] * 6
    assert sorted((p.a, p.b, p.same) for p in ten_fold) == sorted((p.a, p.b, p.same) for p in dev)
    for pair in ten_fold:
        assert pair.a != pair.b
        assert (_identity(pair.a) == _identity(pair.b)) == pair.same
    assert len({(p.a, p.b) for p in ten_fold}) == 12  # no repeated pair


def test_each_fold_has_its_own_people(tiny):
    people = [{_identity(x) for p in read_pairs(tiny["pairs"], tiny["test"]) if p.fold == k for x in (p.a, p.b)}
              for k in (0, 1)]
    assert people[0] and people[1] and not people[0] & people[1]


def test_images_of_one_person_look_more_alike_than_images_of_two(tiny):
    images = read_identity_folders(tiny["train"]) + read_identity_folders(tiny["test"])
    pixels = np.stack([np.asarray(load_image(i.path), dtype=np.float64).ravel() for i in images])
    ids = np.array([i.identity for i in images])
    correlation = np.corrcoef(pixels)
    same = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
    different = ids[:, None] != ids[None, :]
    # Backgrounds, pose and lighting vary per photo, so raw pixels carry only a weak identity signal.
    assert correlation[same].mean() > correlation[different].mean() + 0.05


def test_impossible_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="test_images >= 2"):
        write_demo_dataset(tmp_path, **{**TINY, "test_images": 1})
