"""Detection metrics: COCO numbers equal pycocotools called directly; KITTI AP equals hand-computed values."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from crossfuse_driving.formats import DetectionSample, DetObject
from crossfuse_driving.metrics import box_overlap, coco_metrics, kitti_ap

CLASSES = ["Car", "Pedestrian"]


def _prediction(*detections):
    """Detections as (label, score, box) triples."""
    return {"boxes": np.array([d[2] for d in detections], dtype=float).reshape(-1, 4),
            "scores": np.array([d[1] for d in detections], dtype=float),
            "labels": [d[0] for d in detections]}


def _coco_case():
    samples = [
        DetectionSample("a.png", 200, 100, (DetObject("Car", (10, 10, 60, 40)), DetObject("Pedestrian", (100, 20, 115, 70))),
                        ignore=((150, 0, 200, 30),)),
        DetectionSample("b.png", 200, 100, (DetObject("Car", (0, 50, 80, 99)), DetObject("Car", (120, 40, 190, 90)))),
        DetectionSample("c.png", 200, 100, ()),
    ]
    predictions = [
        _prediction(("Car", 0.9, (12, 11, 61, 42)), ("Pedestrian", 0.8, (101, 25, 117, 72)),
                    ("Car", 0.7, (155, 2, 195, 25)),  # inside the ignored region: neither right nor wrong
                    ("Pedestrian", 0.3, (20, 20, 40, 60))),
        _prediction(("Car", 0.95, (2, 48, 78, 99)), ("Car", 0.6, (60, 40, 100, 80)), ("Car", 0.4, (125, 45, 185, 95))),
        _prediction(("Car", 0.5, (10, 10, 30, 30))),
    ]
    return samples, predictions


def _pycocotools_by_hand(samples, predictions):
    """The same case written straight in COCO's own format (xywh), evaluated by pycocotools."""
    ground_truth = {"images": [{"id": i, "width": 200, "height": 100} for i in range(3)],
                    "categories": [{"id": 1, "name": "Car"}, {"id": 2, "name": "Pedestrian"}], "annotations": []}
    rows = [(0, 1, [10, 10, 50, 30], 0), (0, 2, [100, 20, 15, 50], 0), (0, 1, [150, 0, 50, 30], 1),
            (0, 2, [150, 0, 50, 30], 1), (1, 1, [0, 50, 80, 49], 0), (1, 1, [120, 40, 70, 50], 0)]
    for n, (image, category, box, crowd) in enumerate(rows):
        ground_truth["annotations"].append({"id": n + 1, "image_id": image, "category_id": category, "bbox": box,
                                            "area": box[2] * box[3], "iscrowd": crowd})
    detections = [{"image_id": 0, "category_id": 1, "bbox": [12, 11, 49, 31], "score": 0.9},
                  {"image_id": 0, "category_id": 2, "bbox": [101, 25, 16, 47], "score": 0.8},
                  {"image_id": 0, "category_id": 1, "bbox": [155, 2, 40, 23], "score": 0.7},
                  {"image_id": 0, "category_id": 2, "bbox": [20, 20, 20, 40], "score": 0.3},
                  {"image_id": 1, "category_id": 1, "bbox": [2, 48, 76, 51], "score": 0.95},
                  {"image_id": 1, "category_id": 1, "bbox": [60, 40, 40, 40], "score": 0.6},
                  {"image_id": 1, "category_id": 1, "bbox": [125, 45, 60, 50], "score": 0.4},
                  {"image_id": 2, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.5}]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = ground_truth
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_coco_metrics_equal_pycocotools_called_directly():
    samples, predictions = _coco_case()
    ours = coco_metrics(predictions, samples, CLASSES)
    reference = _pycocotools_by_hand(samples, predictions)
    assert ours["mAP"] == pytest.approx(reference.stats[0])
    assert ours["mAP@.5"] == pytest.approx(reference.stats[1])
    assert ours["mAP@.75"] == pytest.approx(reference.stats[2])
    car = reference.eval["precision"][0, :, 0, 0, -1]
    assert ours["per_class_AP@.5"]["Car"] == pytest.approx(car[car > -1].mean())
    assert 0.3 < ours["mAP@.5"] < 1.0  # a real mix of hits, misses and false alarms


def test_coco_metrics_perfect_and_empty_detections():
    samples, _ = _coco_case()
    perfect = [_prediction(*[(o.label, 0.9, o.box) for o in s.objects]) for s in samples]
    assert coco_metrics(perfect, samples, CLASSES)["mAP"] == pytest.approx(1.0)
    nothing = [_prediction() for _ in samples]
    assert coco_metrics(nothing, samples, CLASSES)["mAP@.5"] == 0.0
    assert coco_metrics(nothing, samples, CLASSES)["mAP_large"] is None  # no large objects: undefined, not 0
    empty = [DetectionSample("e.png", 10, 10, ())]
    assert coco_metrics([_prediction(("Car", 0.9, (1, 1, 5, 5)))], empty, CLASSES)["mAP@.5"] is None


def test_coco_difficult_and_ignored_labels_are_not_false_positives():
    sample = DetectionSample("a.png", 100, 100, (DetObject("Car", (0, 0, 40, 40)),
                                                  DetObject("Car", (50, 50, 90, 90), difficult=True),
                                                  DetObject("Van", (0, 50, 40, 95))))
    hits_all = _prediction(("Car", 0.9, (0, 0, 40, 40)), ("Car", 0.8, (50, 50, 90, 90)), ("Car", 0.7, (0, 50, 40, 95)))
    assert coco_metrics([hits_all], [sample], ["Car"], ignore_labels=["Van"])["mAP"] == pytest.approx(1.0)
    assert coco_metrics([hits_all], [sample], ["Car"])["mAP"] < 1.0  # a Van the task does not ignore is a miss


# -- KITTI ---------------------------------------------------------------------------------------
def _kitti_case():
    """40 images with one clearly visible car each (50 px high), found with scores 0.99, 0.98 ... 0.60.

    Extras: a false alarm scoring 0.985 in image 1; a detection inside a DontCare region in image 0
    (scoring 0.97, not a false alarm); a largely occluded car (level 2) in image 2, found with score 0.3.
    """
    samples, predictions = [], []
    for i in range(40):
        car = DetObject("Car", (10, 20, 110, 70))
        objects = (car, DetObject("Car", (150, 20, 250, 70), occluded=2)) if i == 2 else (car,)
        ignore = ((300, 0, 360, 60),) if i == 0 else ()
        samples.append(DetectionSample(f"{i}.png", 400, 100, objects, ignore=ignore))
        found = [("Car", 0.99 - i / 100, (11, 21, 111, 71))]
        if i == 0:
            found.append(("Car", 0.97, (305, 5, 350, 55)))
        if i == 1:
            found.append(("Car", 0.985, (200, 20, 300, 70)))
        if i == 2:
            found.append(("Car", 0.3, (150, 20, 250, 70)))
        predictions.append(_prediction(*found))
    return samples, predictions


def test_kitti_ap_matches_the_hand_computed_value():
    samples, predictions = _kitti_case()
    result = kitti_ap(predictions, samples, ["Car"])
    # Easy and moderate: 40 valid cars (the occluded one is ignored, and so is its detection).
    # One threshold per true positive; precision at threshold i is 1 for i = 0 and (i+1)/(i+2)
    # after it (the 0.985 false alarm); interpolation lifts indices 1..39 to 40/41; index 40
    # is 0. AP|R40 averages indices 1..40: 39 * (40/41) / 40 = 39/41.
    assert result["kitti_AP"]["Car"]["easy"] == pytest.approx(39 / 41)
    assert result["kitti_AP"]["Car"]["moderate"] == pytest.approx(39 / 41)
    # Hard admits occlusion level 2: 41 valid cars, all found; 41 thresholds, indices 1..40 at 41/42.
    assert result["kitti_AP"]["Car"]["hard"] == pytest.approx(41 / 42)
    assert result["kitti_mAP_moderate"] == pytest.approx(39 / 41)


def test_kitti_iou_threshold_depends_on_the_class():
    samples, predictions = _kitti_case()
    loose = [_prediction(("Car", s, (11, 21, 111, 91))) for s in np.linspace(0.99, 0.6, 40)]  # IoU 0.71 -> 0.625
    overlap = box_overlap(np.array([[11, 21, 111, 91]]), np.array([[10, 20, 110, 70]]))[0, 0]
    assert 0.5 < overlap < 0.7
    assert kitti_ap(loose, samples, ["Car"])["kitti_AP"]["Car"]["easy"] == 0.0  # cars need IoU > 0.7
    assert kitti_ap(loose, samples, ["Car"], iou={"Car": 0.5})["kitti_AP"]["Car"]["easy"] == pytest.approx(39 / 40)


def test_kitti_min_height_and_missing_class():
    samples, predictions = _kitti_case()
    tall_only = kitti_ap(predictions, samples, ["Car", "Cyclist"], min_height=(60.0, 25.0, 25.0))
    assert tall_only["kitti_AP"]["Car"]["easy"] is None  # every car is under 60 px: nothing to find
    assert tall_only["kitti_AP"]["Cyclist"]["moderate"] is None  # no cyclists at all
    assert tall_only["kitti_mAP_moderate"] == pytest.approx(39 / 41)  # the mean skips classes with no objects


def test_box_overlap_iou_and_intersection_over_area():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    assert box_overlap(a, b)[0].tolist() == pytest.approx([50 / 150, 1.0, 0.0])
    assert box_overlap(a, b, criterion=0)[0].tolist() == pytest.approx([0.5, 1.0, 0.0])
