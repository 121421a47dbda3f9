"""The ``driving-detection`` task: 2D object detection of cars, pedestrians and cyclists.

Data comes through the core's dataset registry: KITTI, COCO or Pascal VOC files
(:mod:`crossfuse_driving.readers`), any detection format another plugin registers for this task,
or by default synthetic road scenes written in KITTI layout (:mod:`crossfuse_driving.synth`).
The model is a torchvision detector on a registry backbone (:mod:`crossfuse_driving.detectors`),
which computes its own losses in training mode. Evaluation collects every image's detections
and scores them with pycocotools and the KITTI protocol (:mod:`crossfuse_driving.metrics`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from crossfuse.augment import ImageAugment, image_augmentation
from crossfuse.datasets import Splits
from crossfuse.errors import DataError, DataWarning
from crossfuse.media import IMAGE_EXTENSIONS, image_tensor
from crossfuse.runs import cached_folder
from crossfuse.task import DataBundle, DataSource, Task, batched, expand_inputs

from .detectors import DetectorConfig, build_detector
from .formats import DetectionSample, class_names, image_size, sanitize
from .metrics import KITTI_IOU, coco_map, kitti_map
from .predictions import prediction_folder, write_predictions

KITTI_OTHER_CLASSES = ["Van", "Truck", "Person_sitting", "Tram", "Misc"]
SPLITS = ("train", "validation", "test")


@dataclass
class DemoConfig:
    """Sizes of the synthetic KITTI-layout demo splits (generated once into the cache folder)."""

    train: int = 600
    validation: int = 100
    test: int = 150
    width: int = 320
    height: int = 96
    seed: int = 0


@dataclass
class AugmentConfig(ImageAugment):
    """Box-aware training augmentation (torchvision transforms v2 on ``tv_tensors.BoundingBoxes``)."""

    hflip: float = 0.5  # road scenes are left-right symmetric enough; never flipped upside down
    color_jitter: float = 0.2  # brightness / contrast / saturation strength; 0 turns it off
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])  # random zoom range
    translate: float = 0.05  # random shift, as a fraction of the image size


@dataclass
class DrivingDataConfig(DataSource):
    """Where the images and boxes come from and which classes count.

    ``format`` (auto, kitti, coco, voc or a format another plugin registers), ``train``,
    ``validation``, ``test`` and ``test_fraction`` are the core's (:class:`crossfuse.task.DataSource`).
    """

    validation_fraction: float = 0.15  # of the training images, by image, when data.validation is unset
    classes: list[str] = field(default_factory=lambda: ["Car", "Pedestrian", "Cyclist"])
    class_map: dict[str, str] = field(default_factory=dict)  # file label -> class, e.g. {person: Pedestrian}
    ignore_classes: list[str] = field(default_factory=lambda: list(KITTI_OTHER_CLASSES))
    min_box_size: float = 1.0  # boxes narrower or lower than this (pixels) are dropped, with a warning
    mask_ignore_regions: bool = True  # grey out DontCare / ignored objects in training images
    image_dir: str = "image_2"  # KITTI
    label_dir: str = "label_2"  # KITTI
    image_set: Optional[str] = None  # VOC ImageSets/Main/<name>.txt
    image_root: Optional[str] = None  # COCO images folder (default: the JSON's folder)
    kitti_min_height: list[float] = field(default_factory=lambda: [40.0, 25.0, 25.0])  # easy/moderate/hard
    kitti_iou: dict[str, float] = field(default_factory=lambda: dict(KITTI_IOU))
    examples: int = 6  # images drawn with true and predicted boxes in the report
    demo: DemoConfig = field(default_factory=DemoConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class DetectionPredictOptions:
    """Options of ``crossfuse predict`` for a detection run."""

    score_threshold: float = field(default=0.5, metadata={"help": "keep detections scoring at least this"})
    output: Optional[str] = field(default=None, metadata={
        "help": "folder for detections.json and the drawn images (default RUN_DIR/predictions/TIMESTAMP); "
                "never written over", "serve": False})  # crossfuse serve: a client names no server folder
    draw: bool = field(default=True, metadata={"help": "also write each image with its boxes drawn (--draw=false: "
                                                       "detections.json only)"})
    batch_size: int = field(default=8, metadata={"help": "images per forward pass"})


class DrivingDetectionTask(Task):
    """Cars, pedestrians and cyclists in road scenes, with COCO and KITTI metrics."""

    name = "driving-detection"
    modality = "image"
    default_backbone = "mobilenet_v3_small"
    main_metric = "mAP@.5"
    DataConfig = DrivingDataConfig
    HeadConfig = DetectorConfig
    PredictOptions = DetectionPredictOptions
    input_extensions = IMAGE_EXTENSIONS

    # -- data ----------------------------------------------------------------------------------
    def demo_data(self) -> Splits:
        """The synthetic scenes, read back through the registered KITTI reader like any KITTI folder."""
        paths = self.demo_paths()
        return Splits(*(self.read(paths[name], format="kitti", key=f"demo {name} data") for name in SPLITS))

    def demo_paths(self) -> dict[str, str]:
        """The demo's KITTI ``training/`` folders by split, written into the cache folder on first use."""
        from .synth import write_kitti_demo

        demo = self.config.data.demo
        paths, offset = {}, 0
        for split, count in zip(SPLITS, (demo.train, demo.validation, demo.test)):
            def fill(folder: Path, count: int = count, offset: int = offset) -> None:
                write_kitti_demo(folder, count, seed=demo.seed, width=demo.width, height=demo.height, start=offset)

            key = f"v1-{demo.width}x{demo.height}-seed{demo.seed}-{split}-{offset}-{count}"
            paths[split] = str(cached_folder("driving-demo", key, fill=fill) / "training")
            offset += count
        return paths

    def split_off(self, samples: list[Any], fraction: float, name: str) -> tuple[list[Any], list[Any]]:
        """A seeded ``fraction`` of the images (numpy's generator: the split driving runs have always had)."""
        count = max(1, int(round(fraction * len(samples)))) if 0 < fraction < 1 else 0
        if not count or count >= len(samples):
            raise DataError(f"data.{name} is not set and data.train has {len(samples)} image(s): give a {name} set, "
                            f"or a data.{name}_fraction in (0, 1) that leaves images on both sides")
        order = np.random.default_rng(self.config.seed).permutation(len(samples))
        held = set(order[:count].tolist())
        return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held]

    def prepare(self, data: DataBundle) -> DataBundle:
        """Map labels onto ``data.classes`` and drop degenerate boxes in every split; refuse a
        validation split without objects (mAP, which picks the best checkpoint, is undefined there)."""
        classes = self.config.data.classes
        train = self._clean(data.train, "the train split")
        validation = self._clean(data.validation, "the validation split")
        test = self._clean(data.test, "the test split") if data.test is not None else None
        if not any(obj.label in classes for sample in validation for obj in sample.objects):
            raise DataError(f"the validation split has no object of data.classes {classes}: mAP, the metric "
                            f"that picks the best checkpoint, is undefined. Give data.validation with objects")
        self.augmentation  # noqa: B018 -- a bad data.augment fails now, before anything is written
        info = {"objects": class_names(train), "source": self.config.data.train or "synthetic KITTI demo"}
        return DataBundle(train, validation, test, info=info)

    def prepare_eval(self, samples: Sequence[Any]) -> list[DetectionSample]:
        return self._clean(samples, "--data")

    def _clean(self, samples: Sequence[DetectionSample], what: str) -> list[DetectionSample]:
        """Map labels onto the task's classes, refuse unknown ones, drop degenerate boxes (counted)."""
        data = self.config.data
        known = set(data.classes) | set(data.ignore_classes)
        cleaned, removed, first = [], 0, ""
        for sample in samples:
            objects = []
            for obj in sample.objects:
                label = data.class_map.get(obj.label, obj.label)
                if label not in known:
                    raise DataError(f"{obj.where or sample.where}: unknown class {obj.label!r}. Expected one of "
                                    f"data.classes {data.classes} or data.ignore_classes {data.ignore_classes}; "
                                    f"map it with data.class_map (e.g. {{{obj.label}: {data.classes[0]}}})")
                objects.append(obj if obj.label == label else replace(obj, label=label))
            sample = replace(sample, objects=tuple(objects))
            kept, dropped = sanitize(sample, data.min_box_size)
            if dropped and not first:
                first = sample.where or sample.image
            removed += dropped
            cleaned.append(kept)
        if removed:
            warnings.warn(f"{what}: removed {removed} degenerate box(es) narrower or lower than {data.min_box_size} px "
                          f"(data.min_box_size), the first in {first}", DataWarning, stacklevel=2)
        return cleaned

    # -- samples and batches -------------------------------------------------------------------
    @cached_property
    def augmentation(self) -> Any:
        """The training augmentation (``data.augment``; boxes move with the pixels), or None when off."""
        return image_augmentation(self.config.data.augment, boxes=True, min_box_size=self.config.data.min_box_size)

    def preprocess(self, sample: DetectionSample, train: bool) -> dict[str, torch.Tensor]:
        """The image as a float ``[3, H, W]`` tensor in [0, 1] with its boxes and label indices (1..K;
        ignored labels left out). Training images also get their ignore regions masked and are augmented."""
        item = self._load(sample, train)
        if train and self.augmentation is not None:
            item = _augmented(self.augmentation, item)
        return {"image": item["image"].float().div(255), "boxes": item["boxes"].float(), "labels": item["labels"]}

    def _load(self, sample: DetectionSample, train: bool) -> dict[str, torch.Tensor]:
        image = image_tensor(sample.image, sample.where or None)
        classes = self.config.data.classes
        keep = [obj for obj in sample.objects if obj.label in classes and not obj.difficult]
        if train and self.config.data.mask_ignore_regions:
            hidden = [obj.box for obj in sample.objects if obj not in keep] + list(sample.ignore)
            image = _mask(image, hidden)
        boxes = torch.tensor([obj.box for obj in keep], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([classes.index(obj.label) + 1 for obj in keep], dtype=torch.int64)
        return {"image": image, "boxes": boxes, "labels": labels}

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        # torchvision detectors take lists: the images may differ in size, the targets in box count
        return {"images": [item["image"] for item in items],
                "targets": [{"boxes": item["boxes"], "labels": item["labels"]} for item in items]}

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"classes": list(self.config.data.classes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("classes") and state["classes"] != list(self.config.data.classes):
            raise DataError(f"{self.run_dir}: task_state.json lists classes {state['classes']} but config.yaml "
                            f"{self.config.data.classes}; the run folder was edited by hand")

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> torch.nn.Module:
        return build_detector(backbone, len(self.config.data.classes), self.config.head)

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        losses = model(batch["images"], batch["targets"])
        return sum(losses.values())

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        return {"detections": [self._plain(d) for d in model(batch["images"])]}

    def export_spec(self, model: Any, batch: dict[str, Any]) -> Any:
        """The whole detector, one image per call (:mod:`.export`)."""
        from .export import detector_spec

        return detector_spec(self, model, batch)

    def _plain(self, detections: dict[str, torch.Tensor]) -> dict[str, Any]:
        # Label 0 is background. FCOS and RetinaNet score every class slot with a sigmoid, so slot 0
        # (never a training target) can still come out of an untrained model: it is not a detection.
        keep = detections["labels"] > 0
        classes = self.config.data.classes
        boxes = detections["boxes"][keep].detach().float().cpu().numpy()
        scores = detections["scores"][keep].detach().float().cpu().numpy()
        labels = detections["labels"][keep].tolist()
        # Best first; scores equal to 4 decimals left to right, top to bottom, so the order does not
        # hang on float noise (an exported detector lists the same boxes as PyTorch in the same order).
        order = np.lexsort((boxes[:, 1], boxes[:, 0], -np.round(scores, 4)))
        return {"boxes": boxes[order], "scores": scores[order], "labels": [classes[labels[i] - 1] for i in order]}

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        detections = outputs["detections"]
        metrics = coco_map(detections, samples, self)
        metrics.update(kitti_map(detections, samples, self))
        metrics["images"] = len(samples)
        metrics["objects"] = class_names(samples)
        metrics["examples"] = _examples(detections, samples, self.config.data.examples)
        return metrics

    # -- use -----------------------------------------------------------------------------------
    def load_input(self, item: str) -> DetectionSample:
        """An image to detect in: a sample without objects (its size from the file's header)."""
        return DetectionSample(str(item), *image_size(item), objects=())

    @torch.no_grad()
    def predict(self, model: Any, inputs: list[str], options: DetectionPredictOptions) -> list[dict[str, Any]]:
        """Boxes scoring at least ``options.score_threshold`` per image, in the image's own pixels;
        also written to ``detections.json`` (and drawn, unless ``--draw=false``) in a new folder."""
        paths = [str(p) for p in expand_inputs(inputs, self.input_extensions)]
        folder = prediction_folder(options.output, self.run_dir)  # refused before any image is read
        results = []
        for chunk in batched(paths, options.batch_size):
            outputs = self.run_batch(model, [self.load_input(path) for path in chunk])
            results += [_prediction(path, found, options.score_threshold)
                        for path, found in zip(chunk, outputs["detections"])]
        if folder is not None:
            write_predictions(results, folder, draw=options.draw)
        return results

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        found = prediction["detections"]
        boxes = "; ".join(f"{d['label']} {d['score']:.2f} {d['box']}" for d in found)
        return f"{prediction['input']}\t{len(found)} object(s)\t{boxes}"

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        from .report import draw_examples

        return draw_examples(report, run_dir)


def _augmented(transform: Any, item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``item`` through the v2 ``transform``; boxes pushed out of the image leave with their labels."""
    from torchvision import tv_tensors

    height, width = item["image"].shape[-2:]
    out = transform({"image": tv_tensors.Image(item["image"]), "labels": item["labels"],
                     "boxes": tv_tensors.BoundingBoxes(item["boxes"], format="XYXY", canvas_size=(height, width))})
    return {"image": out["image"].as_subclass(torch.Tensor), "boxes": out["boxes"].as_subclass(torch.Tensor),
            "labels": out["labels"]}


def _mask(image: torch.Tensor, boxes: list) -> torch.Tensor:
    """Fill ``boxes`` with the image's mean colour, so they teach neither object nor background."""
    if not boxes:
        return image
    image = image.clone()
    mean = image.float().mean(dim=(1, 2)).round().to(image.dtype)
    height, width = image.shape[-2:]
    for x1, y1, x2, y2 in boxes:
        left, top = max(0, int(x1)), max(0, int(y1))
        right, bottom = min(width, int(np.ceil(x2)) + 1), min(height, int(np.ceil(y2)) + 1)
        image[:, top:bottom, left:right] = mean[:, None, None]
    return image


def _prediction(path: str, found: dict[str, Any], threshold: float) -> dict[str, Any]:
    # Compared in float32, as the scores are: a score of exactly the threshold is kept.
    keep = np.asarray(found["scores"]) >= np.float32(threshold)
    return {"input": path, "detections": [
        {"label": label, "score": round(float(score), 4), "box": [round(float(v), 1) for v in box]}
        for box, score, label, kept in zip(found["boxes"], found["scores"], found["labels"], keep) if kept]}


def _examples(detections: list[dict], samples: Sequence[DetectionSample], count: int) -> list[dict]:
    """The first ``count`` images with their true and predicted boxes (score >= 0.3), for the pictures."""
    examples = []
    for prediction, sample in list(zip(detections, samples))[:count]:
        examples.append({
            "image": sample.image,
            "truth": [{"label": o.label, "box": [round(v, 1) for v in o.box]} for o in sample.objects],
            "predicted": [{"label": label, "score": round(float(score), 3), "box": [round(float(v), 1) for v in box]}
                          for box, score, label in zip(prediction["boxes"], prediction["scores"], prediction["labels"])
                          if score >= 0.3],
        })
    return examples
