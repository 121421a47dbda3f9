"""Detection metrics: COCO mAP through pycocotools and KITTI's 2D average precision.

Both take the same inputs: one :class:`~crossfuse_driving.formats.DetectionSample` (ground truth)
and one prediction per image, a dict with ``boxes`` (``[N, 4]`` x1, y1, x2, y2 pixels),
``scores`` (``[N]``) and ``labels`` (``N`` class names).

- COCO: the ground truth and detections are handed to ``pycocotools.cocoeval.COCOeval``
  unchanged; regions to ignore (KITTI ``DontCare``, COCO ``iscrowd``, VOC ``difficult`` objects,
  classes the task ignores) become ``iscrowd`` annotations, which COCOeval already treats as
  "a detection here is neither right nor wrong".
- KITTI: there is no maintained Python package of the official devkit, so :func:`kitti_ap` ports
  its rules (``devkit_object/cpp/evaluate_object.cpp``, as in its Python port in OpenPCDet):
  per-difficulty minimum height, maximum occlusion and truncation; ``Van`` ignored for ``Car`` and
  ``Person_sitting`` for ``Pedestrian``; detections inside ``DontCare`` not counted as false
  positives; a ground truth matched to the detection of largest overlap (strictly above the
  class's IoU threshold); precision sampled at 41 recall-spaced score thresholds and averaged
  over 40 recall points (``AP|R40``, the benchmark's metric since 2019).

:func:`coco_map` and :func:`kitti_map` are the same metrics as registered ones (``coco-map``,
``kitti-ap``): their parameters follow the core's convention (``detections``, the task's
``predict_step`` output, the split's ``samples`` and the ``task``, whose ``data`` section gives the
classes and the KITTI rules), so ``--set eval.metrics=[kitti-ap]`` adds them to any detection task.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Sequence

import numpy as np

KITTI_DIFFICULTIES = ("easy", "moderate", "hard")
KITTI_MAX_OCCLUSION = (0, 1, 2)
KITTI_MAX_TRUNCATION = (0.15, 0.3, 0.5)
KITTI_MIN_HEIGHT = (40.0, 25.0, 25.0)  # pixels, for KITTI's 375-pixel-high images
KITTI_IOU = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
KITTI_NEIGHBOURS = {"Car": "Van", "Pedestrian": "Person_sitting"}  # ignored, neither right nor wrong


def coco_map(detections: Sequence[dict], samples: Sequence[Any], task: Any) -> dict[str, Any]:
    """:func:`coco_metrics` of a split, with ``data.classes`` and ``data.ignore_classes`` of ``task``."""
    data = task.config.data
    return coco_metrics(detections, samples, data.classes, data.ignore_classes)


def kitti_map(detections: Sequence[dict], samples: Sequence[Any], task: Any) -> dict[str, Any]:
    """:func:`kitti_ap` of a split, with ``data.classes``, ``data.kitti_iou`` and ``data.kitti_min_height``."""
    data = task.config.data
    return kitti_ap(detections, samples, data.classes, iou=data.kitti_iou, min_height=data.kitti_min_height)


def coco_metrics(predictions: Sequence[dict], samples: Sequence[Any], classes: Sequence[str],
                 ignore_labels: Sequence[str] = ()) -> dict[str, Any]:
    """COCO box metrics by pycocotools: mAP@[.5:.95], mAP@.5, mAP@.75, by object size, and per class.

    Values with no ground truth behind them (a size range or class absent from the split) are ``None``.

    Objects whose label is in ``ignore_labels`` or flagged ``difficult`` are ignored regions.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground_truth, detections = _coco_dicts(predictions, samples, classes, set(ignore_labels))
    names = ("mAP", "mAP@.5", "mAP@.75", "mAP_small", "mAP_medium", "mAP_large")
    if not any(a["iscrowd"] == 0 for a in ground_truth["annotations"]):  # nothing to find: AP is undefined
        return dict.fromkeys(names) | {"per_class_AP": dict.fromkeys(classes), "per_class_AP@.5": dict.fromkeys(classes)}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = ground_truth
        coco.createIndex()
        result = coco.loadRes(detections) if detections else COCO()
        if not detections:  # loadRes refuses an empty list: an empty result scores 0
            result.dataset = {"images": ground_truth["images"], "categories": ground_truth["categories"],
                              "annotations": []}
            result.createIndex()
        evaluator = COCOeval(coco, result, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # pycocotools writes -1 where a size range or class has no objects: undefined, so None (JSON null).
    metrics: dict[str, Any] = {name: _defined(value) for name, value in zip(names, evaluator.stats[:6])}
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall, class, area range, max dets]
    metrics["per_class_AP"], metrics["per_class_AP@.5"] = {}, {}
    for k, name in enumerate(classes):
        for key, block in (("per_class_AP", precision[:, :, k, 0, -1]), ("per_class_AP@.5", precision[0, :, k, 0, -1])):
            valid = block[block > -1]
            metrics[key][name] = float(valid.mean()) if valid.size else None
    return metrics


def _defined(value: float) -> float | None:
    return None if value < 0 or np.isnan(value) else float(value)


def _coco_dicts(predictions, samples, classes, ignore_labels):
    category = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations, detections = [], [], []

    def add(image_id, box, category_id, crowd):
        x1, y1, x2, y2 = (float(v) for v in box)
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd})

    for image_id, (sample, prediction) in enumerate(zip(samples, predictions)):
        images.append({"id": image_id, "width": sample.width, "height": sample.height})
        for obj in sample.objects:
            if obj.label in category and not obj.difficult:
                add(image_id, obj.box, category[obj.label], 0)
            elif obj.label in category or obj.label in ignore_labels:
                for category_id in ([category[obj.label]] if obj.label in category else category.values()):
                    add(image_id, obj.box, category_id, 1)
        for box in sample.ignore:  # a don't-care region hides objects of every class
            for category_id in category.values():
                add(image_id, box, category_id, 1)
        for box, score, label in zip(np.asarray(prediction["boxes"]).reshape(-1, 4), prediction["scores"],
                                     prediction["labels"]):
            x1, y1, x2, y2 = (float(v) for v in box)
            detections.append({"image_id": image_id, "category_id": category[label],
                               "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    ground_truth = {"images": images, "annotations": annotations,
                    "categories": [{"id": i, "name": n} for n, i in category.items()]}
    return ground_truth, detections


# -- KITTI --------------------------------------------------------------------------------------
def kitti_ap(predictions: Sequence[dict], samples: Sequence[Any], classes: Sequence[str],
             iou: dict[str, float] | None = None, min_height: Sequence[float] = KITTI_MIN_HEIGHT) -> dict[str, Any]:
    """KITTI 2D AP|R40 per class at the easy, moderate and hard levels, plus their mean over classes.

    A class with no object at a level gets ``None`` there, and the mean skips it.

    ``iou`` maps class to IoU threshold (default Car 0.7, Pedestrian and Cyclist 0.5, others 0.5);
    ``min_height`` is the minimum box height per level in pixels: scale it with your images
    (the defaults are KITTI's, for 375-pixel-high images).
    """
    thresholds = {**KITTI_IOU, **(iou or {})}
    table: dict[str, dict[str, float]] = {}
    for name in classes:
        table[name] = {}
        for level in range(3):
            images = [_kitti_image(p, s, name, level, min_height[level]) for p, s in zip(predictions, samples)]
            table[name][KITTI_DIFFICULTIES[level]] = _kitti_class_ap(images, thresholds.get(name, 0.5))
    result: dict[str, Any] = {"kitti_AP": table}
    for level in KITTI_DIFFICULTIES:
        values = [table[name][level] for name in classes if table[name][level] is not None]
        result[f"kitti_mAP_{level}"] = float(np.mean(values)) if values else None
    return result


def _kitti_image(prediction: dict, sample: Any, name: str, level: int, min_height: float) -> dict:
    """One image's boxes for one class and level, with KITTI's ignore flags (0 valid, 1 ignored, -1 other)."""
    neighbour = KITTI_NEIGHBOURS.get(name)
    gt_boxes, gt_flags = [], []
    for obj in sample.objects:
        height = obj.box[3] - obj.box[1]
        hard_to_see = (obj.occluded > KITTI_MAX_OCCLUSION[level] or obj.truncated > KITTI_MAX_TRUNCATION[level]
                       or height <= min_height)
        if obj.label == name:
            flag = 1 if hard_to_see or obj.difficult else 0
        elif obj.label == neighbour:
            flag = 1
        else:
            continue
        gt_boxes.append(obj.box)
        gt_flags.append(flag)
    labels = list(prediction["labels"])
    keep = [i for i, label in enumerate(labels) if label == name]
    boxes = np.asarray(prediction["boxes"], dtype=np.float64).reshape(-1, 4)[keep]
    scores = np.asarray(prediction["scores"], dtype=np.float64).reshape(-1)[keep]
    det_flags = np.where(boxes[:, 3] - boxes[:, 1] < min_height, 1, 0)
    return {"gt": np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4), "gt_flags": np.asarray(gt_flags, dtype=int),
            "dt": boxes, "scores": scores, "dt_flags": det_flags,
            "dc": np.asarray(sample.ignore, dtype=np.float64).reshape(-1, 4)}


def _kitti_class_ap(images: list[dict], min_overlap: float) -> float | None:
    valid_gt = sum(int((image["gt_flags"] == 0).sum()) for image in images)
    if valid_gt == 0:
        return None  # no object of this class at this level: AP is undefined, not 0
    for image in images:
        image["iou"] = box_overlap(image["dt"], image["gt"])
        image["dc_overlap"] = box_overlap(image["dt"], image["dc"], criterion=0)
    matched_scores = np.concatenate([_match(image, min_overlap, None)[3] for image in images])
    thresholds = _recall_thresholds(matched_scores, valid_gt)
    precision = np.zeros(41)
    for i, threshold in enumerate(thresholds):
        tp = fp = fn = 0
        for image in images:
            t, f, n, _ = _match(image, min_overlap, threshold)
            tp, fp, fn = tp + t, fp + f, fn + n
        precision[i] = tp / (tp + fp) if tp + fp else 0.0
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # interpolate: best precision at higher recall
    return float(precision[1:].sum() / 40)


def _match(image: dict, min_overlap: float, threshold: float | None) -> tuple[int, int, int, np.ndarray]:
    """KITTI's ``compute_statistics``: true/false positives and misses of one image.

    ``threshold=None`` is the first pass: each ground truth takes its highest-scoring detection,
    and the scores of valid matches are returned to choose the thresholds from. Otherwise only
    detections scoring at least ``threshold`` count, and each ground truth takes the detection of
    largest overlap.
    """
    scores, dt_flags, overlaps = image["scores"], image["dt_flags"], image["iou"]
    below = np.zeros(len(scores), bool) if threshold is None else scores < threshold
    assigned = np.zeros(len(scores), bool)
    tp = fn = 0
    matched_scores = []
    for g, gt_flag in enumerate(image["gt_flags"]):
        candidates = np.flatnonzero(~assigned & ~below & (overlaps[:, g] > min_overlap))
        if threshold is None:  # first pass: the highest score, ignored detections included
            best = candidates[np.argmax(scores[candidates])] if candidates.size else -1
        else:  # the largest overlap among counted detections, else any ignored one
            counted = candidates[dt_flags[candidates] == 0]
            best = (counted[np.argmax(overlaps[counted, g])] if counted.size
                    else candidates[0] if candidates.size else -1)
        if best == -1:
            fn += int(gt_flag == 0)
        elif gt_flag == 1 or dt_flags[best] == 1:
            assigned[best] = True  # ignored either side: neither a hit nor a false alarm
        else:
            tp += 1
            assigned[best] = True
            matched_scores.append(scores[best])
    counted = ~(assigned | below | (dt_flags == 1))
    in_dont_care = (image["dc_overlap"] > min_overlap).any(axis=1) if image["dc_overlap"].size else False
    fp = int((counted & ~in_dont_care).sum())
    return tp, fp, fn, np.asarray(matched_scores, dtype=np.float64)


def _recall_thresholds(scores: np.ndarray, valid_gt: int, points: int = 41) -> list[float]:
    """KITTI's ``get_thresholds``: scores at which recall crosses each of ``points`` evenly spaced values."""
    scores = np.sort(scores)[::-1]
    chosen, current = [], 0.0
    for i, score in enumerate(scores):
        left = (i + 1) / valid_gt
        right = (i + 2) / valid_gt if i < len(scores) - 1 else left
        if right - current < current - left and i < len(scores) - 1:
            continue
        chosen.append(float(score))
        current += 1 / (points - 1.0)
    return chosen


def box_overlap(boxes: np.ndarray, others: np.ndarray, criterion: int = -1) -> np.ndarray:
    """Pairwise overlap ``[len(boxes), len(others)]``: IoU (``criterion=-1``) or intersection over
    the area of ``boxes`` (``criterion=0``, how KITTI tests a detection against a DontCare region)."""
    boxes, others = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(others, np.float64).reshape(-1, 4)
    width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0])
    height = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if criterion == 0:
        return inter / np.maximum(area[:, None], 1e-12)
    other_area = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area[:, None] + other_area[None, :] - inter, 1e-12)
