"""The ``driving-detection`` task: 2D object detection of cars, pedestrians and cyclists.

Data comes from KITTI, COCO or Pascal VOC files (:mod:`crossfuse_driving.formats`) or, by
default, from synthetic road scenes written in KITTI layout (:mod:`crossfuse_driving.synth`).
The model is a torchvision detector on a registry backbone (:mod:`crossfuse_driving.detectors`),
which computes its own losses in training mode. Evaluation collects every image's detections
and scores them with pycocotools and the KITTI protocol (:mod:`crossfuse_driving.metrics`).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from crossfuse.errors import ConfigError, CrossfuseError, DataError, DataWarning
from crossfuse.runs import atomic_write, cached_folder
from crossfuse.task import DataBundle, Task, expand_inputs

from .detectors import DetectorConfig, build_detector
from .formats import DetectionSample, class_names, read_dataset, sanitize
from .metrics import KITTI_IOU, coco_metrics, kitti_ap

FORMATS = ("auto", "kitti", "coco", "voc")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
KITTI_OTHER_CLASSES = ["Van", "Truck", "Person_sitting", "Tram", "Misc"]


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
class AugmentConfig:
    """Box-aware training augmentation (torchvision transforms v2 on ``tv_tensors.BoundingBoxes``)."""

    hflip: float = 0.5  # probability of a horizontal flip
    color_jitter: float = 0.2  # brightness / contrast / saturation strength; 0 turns it off
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])  # random zoom range
    translate: float = 0.05  # random shift, as a fraction of the image size


@dataclass
class DrivingDataConfig:
    """Where the images and boxes come from and which classes count."""

    format: str = "auto"  # auto, kitti, coco or voc
    train: Optional[str] = None  # KITTI training/ folder, COCO .json or VOC root; none: the demo scenes
    validation: Optional[str] = None  # none: data.validation_fraction of train, by image
    test: Optional[str] = None
    validation_fraction: float = 0.15
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

    score_threshold: float = 0.5
    output: Optional[str] = None  # folder for detections.json and drawn images (default RUN_DIR/predictions/TIME)
    draw: bool = True
    batch_size: int = 8


class DrivingDetectionTask(Task):
    """Cars, pedestrians and cyclists in road scenes, with COCO and KITTI metrics."""

    name = "driving-detection"
    modality = "image"
    default_backbone = "mobilenet_v3_small"
    main_metric = "mAP@.5"
    DataConfig = DrivingDataConfig
    HeadConfig = DetectorConfig
    PredictOptions = DetectionPredictOptions

    # -- data ----------------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        data = self.config.data
        if data.format not in FORMATS:
            raise ConfigError(f"data.format: unknown format {data.format!r}; choose one of {', '.join(FORMATS)}")
        if data.train is None:
            roots = self._demo_roots()
            train, validation, test = (self._read(roots[name], "kitti") for name in ("train", "validation", "test"))
        else:
            train = self._read(data.train, data.format)
            test = self._read(data.test, data.format) if data.test else None
            if data.validation:
                validation = self._read(data.validation, data.format)
            else:
                train, validation = self._split(train)
        if not train:
            raise DataError(f"data.train {data.train!r}: no images found")
        if not any(obj.label in data.classes for sample in validation for obj in sample.objects):
            raise DataError(f"the validation split has no object of data.classes {data.classes}: mAP, the metric "
                            f"that picks the best checkpoint, is undefined. Give data.validation with objects")
        info = {"objects": class_names(train), "source": data.train or "synthetic KITTI demo"}
        return DataBundle(TrainingImages(train, self), validation, test, info=info)

    def load_eval_data(self, path: str) -> list[DetectionSample]:
        return self._read(path, self.config.data.format)

    def _demo_roots(self) -> dict[str, Path]:
        from .synth import write_kitti_demo

        demo = self.config.data.demo
        roots, offset = {}, 0
        for split, count in (("train", demo.train), ("validation", demo.validation), ("test", demo.test)):
            def fill(folder: Path, count: int = count, offset: int = offset) -> None:
                write_kitti_demo(folder, count, seed=demo.seed, width=demo.width, height=demo.height, start=offset)

            key = f"v1-{demo.width}x{demo.height}-seed{demo.seed}-{split}-{offset}-{count}"
            roots[split] = cached_folder("driving-demo", key, fill=fill) / "training"
            offset += count
        return roots

    def _read(self, path: str | Path, format: str) -> list[DetectionSample]:
        data = self.config.data  # each reader takes the options it knows
        samples = read_dataset(path, format, image_dir=data.image_dir, label_dir=data.label_dir,
                               image_set=data.image_set, image_root=data.image_root)
        return self._clean(samples, str(path))

    def _clean(self, samples: list[DetectionSample], source: str) -> list[DetectionSample]:
        """Map labels onto the task's classes, refuse unknown ones, drop degenerate boxes (counted)."""
        data = self.config.data
        known = set(data.classes) | set(data.ignore_classes)
        cleaned, removed = [], 0
        for sample in samples:
            objects = []
            for obj in sample.objects:
                label = data.class_map.get(obj.label, obj.label)
                if label not in known:
                    raise DataError(f"{obj.where or sample.where}: unknown class {obj.label!r}. Expected one of "
                                    f"data.classes {data.classes} or data.ignore_classes {data.ignore_classes}; "
                                    f"map it with data.class_map (e.g. {{{obj.label}: {data.classes[0]}}})")
                objects.append(obj if obj.label == label else replace(obj, label=label))
            sample, dropped = sanitize(replace(sample, objects=tuple(objects)), data.min_box_size)
            removed += dropped
            cleaned.append(sample)
        if removed:
            warnings.warn(f"{source}: removed {removed} degenerate box(es) narrower or lower than "
                          f"{data.min_box_size} px (data.min_box_size)", DataWarning, stacklevel=2)
        return cleaned

    def _split(self, samples: list[DetectionSample]) -> tuple[list, list]:
        fraction = self.config.data.validation_fraction
        if not 0 < fraction < 1 or len(samples) < 2:
            raise DataError(f"data.validation is not set and data.train has {len(samples)} image(s): give a "
                            f"validation set, or a data.validation_fraction in (0, 1) of at least 2 images")
        order = np.random.default_rng(self.config.seed).permutation(len(samples))
        count = max(1, int(round(fraction * len(samples))))
        held = set(order[:count].tolist())
        return ([s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held])

    # -- batches -------------------------------------------------------------------------------
    def collate(self, samples: list[Any]) -> dict[str, Any]:
        items = [item if isinstance(item, dict) else self.load_item(item) for item in samples]
        return {"images": [item["image"].float().div(255) for item in items],
                "targets": [{"boxes": item["boxes"].float(), "labels": item["labels"]} for item in items]}

    def load_item(self, sample: DetectionSample, train: bool = False) -> dict[str, Any]:
        """An image as a ``uint8`` tensor with its boxes and label indices (1..K; ignored labels left out)."""
        image = read_image(sample.image, sample.where)
        classes = self.config.data.classes
        keep = [obj for obj in sample.objects if obj.label in classes and not obj.difficult]
        if train and self.config.data.mask_ignore_regions:
            hidden = [obj.box for obj in sample.objects if obj not in keep] + list(sample.ignore)
            image = _mask(image, hidden)
        boxes = torch.tensor([obj.box for obj in keep], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([classes.index(obj.label) + 1 for obj in keep], dtype=torch.int64)
        return {"image": image, "boxes": boxes, "labels": labels}

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> torch.nn.Module:
        if getattr(backbone, "modality", None) != "image":
            raise CrossfuseError(f"driving-detection needs an image backbone, got {self.config.backbone.name!r}")
        return build_detector(backbone, len(self.config.data.classes), self.config.head)

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        losses = model(batch["images"], batch["targets"])
        return sum(losses.values())

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        return {"detections": [self._plain(d) for d in model(batch["images"])]}

    def _plain(self, detections: dict[str, torch.Tensor], threshold: float = 0.0) -> dict[str, Any]:
        # Label 0 is background. FCOS and RetinaNet score every class slot with a sigmoid, so slot 0
        # (never a training target) can still come out of an untrained model: it is not a detection.
        keep = (detections["scores"] >= threshold) & (detections["labels"] > 0)
        classes = self.config.data.classes
        return {"boxes": detections["boxes"][keep].detach().float().cpu().numpy(),
                "scores": detections["scores"][keep].detach().float().cpu().numpy(),
                "labels": [classes[int(i) - 1] for i in detections["labels"][keep].tolist()]}

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        data = self.config.data
        detections = outputs["detections"]
        metrics = coco_metrics(detections, samples, data.classes, data.ignore_classes)
        metrics.update(kitti_ap(detections, samples, data.classes, iou=data.kitti_iou,
                                min_height=data.kitti_min_height))
        metrics["images"] = len(samples)
        metrics["objects"] = class_names(samples)
        metrics["examples"] = _examples(detections, samples, data.examples)
        return metrics

    # -- use -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: Any, inputs: list[str], options: DetectionPredictOptions) -> list[dict[str, Any]]:
        paths = expand_inputs(inputs, IMAGE_EXTENSIONS)
        output = self._prediction_folder(options)
        device = next(model.parameters()).device
        model.eval()
        results = []
        for start in range(0, len(paths), options.batch_size):
            chunk = paths[start:start + options.batch_size]
            images = [read_image(p, p).float().div(255).to(device) for p in chunk]
            for path, detections in zip(chunk, model(images)):
                plain = self._plain(detections, options.score_threshold)
                results.append({"input": str(path), "detections": [
                    {"label": label, "score": round(float(score), 4), "box": [round(float(v), 1) for v in box]}
                    for box, score, label in zip(plain["boxes"], plain["scores"], plain["labels"])]})
        if output is not None:
            self._write_predictions(results, output, options)
        return results

    def _prediction_folder(self, options: DetectionPredictOptions) -> Path | None:
        if options.output:
            folder = Path(options.output)
            if (folder / "detections.json").exists():
                raise CrossfuseError(f"{folder / 'detections.json'} exists: choose another --output folder "
                                     f"(predictions are never written over)")
            return folder
        if self.run_dir is None:
            return None  # Python use without a run folder: return results only
        return Path(self.run_dir) / "predictions" / time.strftime("%Y%m%d-%H%M%S")

    def _write_predictions(self, results: list[dict], folder: Path, options: DetectionPredictOptions) -> None:
        from .report import draw_boxes

        folder.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        for result in results:
            if options.draw:
                name = _unique_name(Path(result["input"]).stem, used) + ".png"
                draw_boxes(result["input"], [], result["detections"], folder / name)
                result["drawn"] = str(folder / name)
        atomic_write(folder / "detections.json", json.dumps(results, indent=2))

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        found = prediction["detections"]
        boxes = "; ".join(f"{d['label']} {d['score']:.2f} {d['box']}" for d in found)
        return f"{prediction['input']}\t{len(found)} object(s)\t{boxes}"

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        from .report import draw_examples

        return draw_examples(report, run_dir)


class TrainingImages:
    """The training split: each item loaded, ignore regions masked and augmented (in DataLoader workers)."""

    def __init__(self, samples: list[DetectionSample], task: DrivingDetectionTask):
        self.samples = samples
        self.task = task
        self.transform = build_augmentation(task.config.data.augment, task.config.data.min_box_size)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from torchvision import tv_tensors

        item = self.task.load_item(self.samples[index], train=True)
        if self.transform is None:
            return item
        height, width = item["image"].shape[-2:]
        out = self.transform({"image": tv_tensors.Image(item["image"]), "labels": item["labels"],
                              "boxes": tv_tensors.BoundingBoxes(item["boxes"], format="XYXY",
                                                                canvas_size=(height, width))})
        return {"image": out["image"].as_subclass(torch.Tensor), "boxes": out["boxes"].as_subclass(torch.Tensor),
                "labels": out["labels"]}


def build_augmentation(config: AugmentConfig, min_box_size: float):
    """The v2 pipeline; boxes move with the pixels and those pushed out of the image are dropped."""
    from torchvision.transforms import v2

    steps: list[Any] = []
    if config.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(config.hflip))
    if config.color_jitter > 0:
        strength = config.color_jitter
        steps.append(v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength))
    if config.translate > 0 or tuple(config.scale) != (1.0, 1.0):
        if len(config.scale) != 2 or not 0 < config.scale[0] <= config.scale[1]:
            raise CrossfuseError(f"data.augment.scale must be [low, high] with 0 < low <= high, got {config.scale}")
        steps.append(v2.RandomAffine(degrees=0, translate=(config.translate, config.translate),
                                     scale=tuple(config.scale)))
    if not steps:
        return None
    return v2.Compose([*steps, v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=min_box_size)])


def read_image(path: str | Path, where: str) -> torch.Tensor:
    """An image file as a ``[3, H, W]`` uint8 tensor; an unreadable file is a :class:`DataError`."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc}); referenced by {where}") from None


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


def _unique_name(stem: str, used: set[str]) -> str:
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return name
