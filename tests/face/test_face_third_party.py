"""A pairs format added by another plugin reaches security-face-match without touching crossfuse_face.

The plugin below is what a stranger would write from the docs: a reader of ``image_a,image_b,same``
CSV files returning ``crossfuse_face.lfw.Pair`` items, registered for the task with its extension.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crossfuse import hookimpl
from crossfuse.errors import DataError
from crossfuse_face.lfw import Pair

from cli_runner import crossfuse
from face_files import write_people


def read_pairs_csv(path, options):
    """``image_a,image_b,same`` rows; image paths relative to the CSV's folder."""
    path = Path(path)
    pairs = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            if row["same"] not in ("0", "1"):
                raise DataError(f"{path}, line {number}: same must be 0 or 1, got {row['same']!r}")
            pairs.append(Pair(str(path.parent / row["image_a"]), str(path.parent / row["image_b"]),
                              row["same"] == "1", where=f"{path.name}, line {number}"))
    return pairs


class CsvPairsPlugin:
    @hookimpl
    def register_datasets(self, register):
        register("csv-pairs", read_pairs_csv, tasks=["security-face-match"], extensions=[".csv"],
                 description="image_a,image_b,same pairs")


@pytest.fixture
def pairs_csv(tmp_path) -> Path:
    """Four pairs over four people, two of them matched, in a folder of its own."""
    root = write_people(tmp_path / "faces", {"Ann_A": 2, "Ben_B": 2, "Cat_C": 2, "Dan_D": 2})
    rows = [("Ann_A/Ann_A_0001.jpg", "Ann_A/Ann_A_0002.jpg", 1), ("Ben_B/Ben_B_0001.jpg", "Ben_B/Ben_B_0002.jpg", 1),
            ("Ann_A/Ann_A_0001.jpg", "Cat_C/Cat_C_0001.jpg", 0), ("Ben_B/Ben_B_0002.jpg", "Dan_D/Dan_D_0001.jpg", 0)]
    path = root / "pairs.csv"
    path.write_text("image_a,image_b,same\n" + "".join(f"{a},{b},{s}\n" for a, b, s in rows), encoding="utf-8")
    return path


@pytest.fixture
def csv_plugin():
    from crossfuse.plugins import get_plugin_manager

    info = get_plugin_manager().register_plugin(CsvPairsPlugin(), "csv-pairs-plugin")
    assert info.registered == {"datasets": ["csv-pairs"]}


def test_eval_reads_a_third_party_pairs_file(tiny_face_run, pairs_csv, csv_plugin):
    result = crossfuse("eval", tiny_face_run.run_dir, "--data", pairs_csv, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert (metrics["n_pairs"], metrics["n_genuine_pairs"], metrics["n_images"]) == (4, 2, 6)
    assert metrics["at_saved_threshold"]["threshold"] == tiny_face_run.report["splits"]["validation"][
        "operating_point"]["threshold"]
    named = crossfuse("eval", tiny_face_run.run_dir, "--data", pairs_csv, "--set", "data.pairs_format=csv-pairs",
                      "--json")
    assert json.loads(named.stdout)["accuracy"] == metrics["accuracy"]


def test_a_third_party_pairs_file_is_a_test_split(tmp_path, pairs_csv, csv_plugin):
    from crossfuse.api import resolve_config, task_class

    people = write_people(tmp_path / "people", {f"P{i}_X": 3 for i in range(8)})
    for key in ("data.test", "data.test_pairs"):
        config = resolve_config("security-face-match", overrides=[f"data.train={people}", f"{key}={pairs_csv}",
                                                                  "data.validation_pair_count=20"])
        test = task_class("security-face-match")(config).load_data().test
        assert [pair.same for pair in test.pairs] == [True, True, False, False]
        assert test.pairs[2].where == "pairs.csv, line 4" and len(test.images) == 6


def test_without_the_plugin_a_csv_is_not_a_face_format(tiny_face_run, pairs_csv):
    result = crossfuse("eval", tiny_face_run.run_dir, "--data", pairs_csv)
    assert result.returncode == 2 and "cannot tell its dataset format" in result.stderr
    assert "lfw-pairs" in result.stderr and "identity-folders" in result.stderr
