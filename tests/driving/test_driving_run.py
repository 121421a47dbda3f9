"""driving-detection end to end: a short CPU run, predict, eval, demo, and bad input through the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from crossfuse_driving.formats import DetectionSample, DetObject, write_kitti_label
from crossfuse_driving.synth import write_kitti_demo

from cli_runner import assert_usage_error, crossfuse


def test_short_run_writes_metrics_checkpoints_and_pictures(tiny_detection_run):
    report = tiny_detection_run.report
    run_dir = tiny_detection_run.run_dir
    assert report["main_metric"] == "mAP@.5"
    for split in ("validation", "test"):
        metrics = report["splits"][split]
        assert 0.0 <= metrics["mAP@.5"] <= 1.0 and 0.0 <= metrics["mAP"] <= metrics["mAP@.5"]
        assert set(metrics["kitti_AP"]) == {"Car", "Pedestrian", "Cyclist"}
        assert set(metrics["per_class_AP@.5"]) == {"Car", "Pedestrian", "Cyclist"}
        assert metrics["images"] == 6
    assert (run_dir / "checkpoints" / "best.safetensors").is_file()
    assert (run_dir / "detections_validation.png").is_file()
    assert report["sizes"] == {"train": 12, "validation": 6, "test": 6}


def test_predict_a_folder_writes_boxes_as_json_and_drawn_images(tiny_detection_run, tmp_path):
    images = write_kitti_demo(tmp_path / "new", 3, seed=5, width=160, height=48) / "image_2"
    out = tmp_path / "out"
    result = crossfuse("predict", tiny_detection_run.run_dir, images, "--score-threshold", "0", "--output", out,
                       "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["input"] for p in predictions] == [str(p) for p in sorted(images.iterdir())]
    assert all(p["detections"] for p in predictions)  # threshold 0 keeps every candidate
    for detection in predictions[0]["detections"]:
        assert detection["label"] in ("Car", "Pedestrian", "Cyclist") and 0 <= detection["score"] <= 1
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 48
    assert json.loads((out / "detections.json").read_text())[0]["input"] == predictions[0]["input"]
    assert sorted(p.name for p in out.glob("*.png")) == ["000000.png", "000001.png", "000002.png"]

    strict = crossfuse("predict", tiny_detection_run.run_dir, images / "000000.png", "--score-threshold=1.01",
                       "--draw=false", "--output", tmp_path / "strict")
    assert strict.returncode == 0, strict.stderr
    assert "\t0 object(s)\t" in strict.stdout
    assert not list((tmp_path / "strict").glob("*.png"))


def test_predict_refuses_to_overwrite_and_unknown_options(tiny_detection_run, tmp_path):
    images = write_kitti_demo(tmp_path / "new", 1, seed=6, width=160, height=48) / "image_2"
    assert crossfuse("predict", tiny_detection_run.run_dir, images, "--output", tmp_path / "o").returncode == 0
    assert_usage_error(crossfuse("predict", tiny_detection_run.run_dir, images, "--output", tmp_path / "o"),
                       "detections.json exists")
    assert_usage_error(crossfuse("predict", tiny_detection_run.run_dir, images, "--score-treshold", "0.3"),
                       "no such option --score-treshold", "--score-threshold")
    assert_usage_error(crossfuse("predict", tiny_detection_run.run_dir, tmp_path / "missing.png"),
                       "missing.png: no such file or folder")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert_usage_error(crossfuse("predict", tiny_detection_run.run_dir, tmp_path / "broken.png"),
                       "broken.png: cannot read the image")


def test_eval_on_kitti_data_and_the_degenerate_box_warning(tiny_detection_run, tmp_path):
    root = write_kitti_demo(tmp_path / "eval", 4, seed=9, width=160, height=48)
    label = root / "label_2" / "000000.txt"
    write_kitti_label(label, [DetObject("Car", (10.0, 10.0, 10.0, 30.0)), DetObject("Car", (0.0, 5.0, 40.0, 47.0))])
    result = crossfuse("eval", tiny_detection_run.run_dir, "--data", root, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["images"] == 4 and 0.0 <= metrics["mAP@.5"] <= 1.0
    assert "warning: --data: removed 1 degenerate box" in result.stderr
    assert f"the first in {label}" in result.stderr


def test_unknown_class_names_the_file_and_line(tiny_detection_run, tmp_path):
    root = write_kitti_demo(tmp_path / "eval", 2, seed=9, width=160, height=48)
    write_kitti_label(root / "label_2" / "000001.txt", [DetObject("Car", (1, 1, 20, 20)),
                                                        DetObject("Tractor", (30, 5, 60, 40))])
    assert_usage_error(crossfuse("eval", tiny_detection_run.run_dir, "--data", root),
                       "000001.txt, line 2", "unknown class 'Tractor'", "data.class_map")
    result = crossfuse("eval", tiny_detection_run.run_dir, "--data", root, "--set", "data.class_map={Tractor: Car}")
    assert result.returncode == 0, result.stderr


def test_missing_label_file_fails_before_training(tmp_path):
    root = write_kitti_demo(tmp_path / "kitti", 3, seed=2, width=160, height=48)
    (root / "label_2" / "000001.txt").unlink()
    result = crossfuse("run", "driving-detection", "--data", root.parent, "--output", tmp_path / "run")
    assert_usage_error(result, "000001")
    assert not (tmp_path / "run").exists()


def test_images_without_objects_and_border_boxes_train(tiny_detection_run):
    import crossfuse

    predictor = crossfuse.load(tiny_detection_run.run_dir)
    task, model = predictor.task, predictor.model
    image = write_kitti_demo(tiny_detection_run.run_dir.parent / "one", 1, seed=1, width=160, height=48)
    path = str(image / "image_2" / "000000.png")
    empty = DetectionSample(path, 160, 48, ())
    border = DetectionSample(path, 160, 48, (DetObject("Car", (0.0, 0.0, 40.0, 48.0)),
                                             DetObject("Pedestrian", (150.0, 10.0, 160.0, 48.0))))
    model.train()
    loss = task.training_step(model, task.collate([task.preprocess(empty, train=True),
                                                   task.preprocess(border, train=True)]))
    assert math.isfinite(loss.item())
    loss.backward()
    assert any(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("key, value, message", [
    ("head.detector", "yolo", "unknown detector 'yolo'"),
    ("data.format", "kitty", "data.format: unknown format 'kitty' for driving-detection; choose one of auto, demo, "
                             "coco, kitti, voc"),
    ("data.augment.crop_scale", "[0.5,1]", "data.augment.crop_scale is not available with boxes"),
])
def test_bad_config_values_exit_2(tmp_path, key, value, message):
    assert_usage_error(crossfuse("run", "driving-detection", "--set", f"{key}={value}", "--set", "data.demo.train=4",
                                 "--output", tmp_path / "run"), message)


def test_eval_on_the_demo_test_folder_reproduces_the_runs_test_map(tiny_detection_run):
    from crossfuse.api import load

    test_folder = load(tiny_detection_run.run_dir).task.demo_paths()["test"]
    result = crossfuse("eval", tiny_detection_run.run_dir, "--data", test_folder, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    expected = tiny_detection_run.report["splits"]["test"]
    assert metrics["images"] == 6
    for key in ("mAP@.5", "mAP", "kitti_mAP_moderate"):
        assert metrics[key] == expected[key]


def test_demo_paths_are_kitti_folders_by_split(tiny_detection_run):
    from crossfuse.api import load
    from crossfuse_driving.formats import read_kitti

    paths = load(tiny_detection_run.run_dir).task.demo_paths()
    assert list(paths) == ["train", "validation", "test"]
    assert [len(read_kitti(paths[split])) for split in paths] == [12, 6, 6]
    assert read_kitti(paths["test"])[0].image.endswith("000018.png")  # splits never share a scene


def test_the_class_list_is_saved_with_the_run_and_checked_on_load(tiny_detection_run, tmp_path):
    import shutil

    from crossfuse.api import load
    from crossfuse.errors import DataError

    state = json.loads((tiny_detection_run.run_dir / "task_state.json").read_text())
    assert state == {"classes": ["Car", "Pedestrian", "Cyclist"]}
    edited = shutil.copytree(tiny_detection_run.run_dir, tmp_path / "edited")
    (edited / "task_state.json").write_text(json.dumps({"classes": ["Car", "Truck", "Cyclist"]}))
    with pytest.raises(DataError, match=r"task_state.json lists classes \['Car', 'Truck', 'Cyclist'\] but config"):
        load(edited)


def test_registered_detection_metrics_are_added_by_name(tiny_detection_run):
    from crossfuse.api import load

    test_folder = load(tiny_detection_run.run_dir).task.demo_paths()["test"]
    result = crossfuse("eval", tiny_detection_run.run_dir, "--data", test_folder, "--set", "eval.metrics=[kitti-ap]",
                       "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["kitti-ap"]["kitti_AP"] == metrics["kitti_AP"]
    assert metrics["kitti-ap"]["kitti_mAP_hard"] == metrics["kitti_mAP_hard"]


def test_predict_help_lists_the_detection_options(tiny_detection_run):
    result = crossfuse("predict", tiny_detection_run.run_dir, "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--score-threshold FLOAT", "keep detections scoring at least this", "--output", "--draw",
                   "--batch-size INT"):
        assert option in result.stdout
