"""A detection format from a third party feeds driving-detection through the dataset registry alone.

The plugin below is what a stranger would write: one reader returning the driving plugin's
``DetectionSample`` items and one ``register_datasets`` hook. ``crossfuse run --data boxes.csv``
and ``crossfuse eval --data boxes.csv`` find it by the file's extension; the driving plugin is not
touched.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

from crossfuse import hookimpl
from crossfuse.errors import DataError
from crossfuse.plugins import get_plugin_manager
from crossfuse_driving.formats import DetectionSample, DetObject, read_kitti
from crossfuse_driving.synth import write_kitti_demo

from cli_runner import assert_usage_error, crossfuse
from driving_files import TINY

COLUMNS = ["image", "label", "x1", "y1", "x2", "y2"]


def read_box_csv(path, options):
    """``image,label,x1,y1,x2,y2`` rows, images relative to the CSV's folder; one sample per image."""
    path = Path(path)
    objects: dict[str, list[DetObject]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                box = tuple(float(row[key]) for key in COLUMNS[2:])
            except (TypeError, ValueError):
                raise DataError(f"{path}, line {number}: expected numbers in x1, y1, x2, y2") from None
            objects.setdefault(row["image"], []).append(DetObject(row["label"], box, where=f"{path}, line {number}"))
    samples = []
    for name, found in objects.items():
        image = path.parent / name
        with Image.open(image) as opened:
            width, height = opened.size
        samples.append(DetectionSample(str(image), width, height, tuple(found), where=str(path)))
    return samples


class BoxCsvPlugin:
    """A third party's plugin object: registers the CSV format for driving-detection."""

    @hookimpl
    def register_datasets(self, register):
        register("box-csv", read_box_csv, tasks=["driving-detection"], extensions=[".csv"],
                 description="image,label,x1,y1,x2,y2 rows")


def write_box_csv(folder: Path, count: int, seed: int) -> Path:
    """Demo scenes as ``folder/boxes.csv`` (their DontCare regions left out, as a plain CSV would)."""
    training = write_kitti_demo(folder, count, seed=seed, width=160, height=48)
    path = folder / "boxes.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for sample in read_kitti(training):
            for obj in sample.objects:
                writer.writerow([Path(sample.image).relative_to(folder).as_posix(), obj.label, *obj.box])
    return path


def test_a_third_party_csv_format_trains_and_evaluates_driving_detection(tmp_path):
    get_plugin_manager().register_plugin(BoxCsvPlugin(), "box-csv-plugin")
    train = write_box_csv(tmp_path / "train", 16, seed=3)
    images = len({row["image"] for row in csv.DictReader(train.open())})
    overrides = [arg for override in TINY + ["train.progress=false"] for arg in ("--set", override)]
    result = crossfuse("run", "driving-detection", "--data", train, "--backbone", "tiny-cnn", "--epochs", "1",
                       "--output", tmp_path / "run", *overrides)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    validation = round(0.15 * images)  # carved out of the CSV's images, by image
    assert report["sizes"] == {"train": images - validation, "validation": validation}
    assert report["splits"]["validation"]["images"] == validation

    held_out = write_box_csv(tmp_path / "held-out", 5, seed=4)
    evaluated = crossfuse("eval", tmp_path / "run", "--data", held_out, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["images"] == len({row["image"] for row in csv.DictReader(held_out.open())})
    assert 0.0 <= metrics["mAP@.5"] <= 1.0


def test_without_the_plugin_a_csv_is_an_unknown_format(tmp_path):
    train = write_box_csv(tmp_path / "train", 2, seed=3)
    assert_usage_error(crossfuse("run", "driving-detection", "--data", train, "--output", tmp_path / "run"),
                       "boxes.csv: cannot tell its dataset format", "kitti", "coco (files .json)")
    assert not (tmp_path / "run").exists()
