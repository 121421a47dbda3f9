"""What a user sets under ``data:`` and ``head:`` for the medical tasks, the options of ``crossfuse
predict``, and the checks the types alone cannot make.

Every field is a type the core's config builder understands, so each one is a YAML key and a
``--set data.KEY=VALUE`` override. :func:`check_data_config` refuses inconsistent values with a
:class:`~crossfuse.errors.ConfigError` naming the key, before anything is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

from crossfuse.augment import ImageAugment
from crossfuse.errors import ConfigError


@dataclass
class AugmentConfig(ImageAugment):
    """Training augmentation suited to radiographs: the core's :class:`~crossfuse.augment.ImageAugment`
    (torchvision transforms v2, built by :func:`~crossfuse.augment.image_augmentation`) with small
    rotations, shifts, zooms and crops and mild exposure changes switched on. Each is off at its
    neutral value (0, or ``[1, 1]``).

    No left-right flip by default: the heart lies on the patient's left and a flipped film is not
    a normal one. Rotations and shifts stay small because positioning varies little in practice.
    """

    rotation: float = 7.0  # degrees, either way
    translate: float = 0.05  # shift, as a fraction of the image side
    scale: list[float] = field(default_factory=lambda: [0.95, 1.05])  # zoom range
    crop_scale: list[float] = field(default_factory=lambda: [0.85, 1.0])  # random crop area, resized back
    color_jitter: float = 0.15  # brightness and contrast (saturation does nothing to grey films)
    hflip: float = 0.0  # probability of a left-right flip
    vflip: float = 0.0  # probability of an upside-down flip


@dataclass
class DemoConfig:
    """The synthetic chest radiographs used when ``data.train`` is unset (generated once, cached)."""

    train: int = 3000
    validation: int = 600
    test: int = 1000
    size: int = 64  # pixels per side
    seed: int = 0
    variant: Literal["multilabel", "multiclass"] = "multilabel"  # several findings per image, or one class


@dataclass
class MedicalDataConfig:
    """Where the images and labels come from, how they are read, and how the operating point is chosen."""

    # The sources the core resolves through the dataset registry.
    format: str = "auto"  # medmnist, image-folder, image-csv, dicom-folder, or auto (by layout / extension)
    train: Optional[str] = None  # .npz, folder or .csv; unset: the synthetic demo
    validation: Optional[str] = None  # unset: the source's own split, else validation_fraction of train
    test: Optional[str] = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.0

    # Labels and the problem type (see crossfuse_medical.labels).
    labels: list[str] = field(default_factory=list)  # class or finding names in output order; empty: from the data
    problem: Literal["auto", "binary", "multiclass", "multilabel"] = "auto"  # auto: from the labels read
    positive_class: Optional[str] = None  # binary: the class that counts as positive (default: not "normal"...)

    # CSV tables (a CSV of image paths, or the labels CSV of a DICOM folder).
    image_column: Optional[str] = None  # unset: the first of image, path, file, filename, Image Index, SOPInstanceUID
    label_columns: list[str] = field(default_factory=list)  # one: class names or ids; several: 0/1 per finding
    label_separator: Optional[str] = None  # one column holding several findings, e.g. "|" (ChestX-ray14)
    no_finding: list[str] = field(default_factory=lambda: ["No Finding"])  # with label_separator: no finding
    uncertain_as: Optional[int] = None  # 0/1 columns: -1 and blank cells (CheXpert) read as 0 or 1; unset: refused
    note_column: str = "note"  # the referral note, when the table has this column
    image_root: Optional[str] = None  # relative image paths start here (default: the CSV's folder)

    # DICOM.
    labels_csv: Optional[str] = None  # a DICOM folder's labels (default: the one .csv file in the folder)
    dicom_key: Literal["auto", "file", "uid"] = "auto"  # match CSV rows by file name or SOPInstanceUID
    window_center: Optional[float] = None  # set both to window every file alike (overrides the file's window)
    window_width: Optional[float] = None
    window_from_file: bool = True  # else (and without a file window) each image's own min-max range

    # Pixels to model input.
    channels: Literal["auto", "grey", "rgb"] = "auto"  # auto: grey when every training image is grey
    resize: Literal["pad", "stretch", "crop"] = "pad"  # to the square input: letterbox, distort, or centre crop

    # Operating point and calibration (chosen on validation, saved with the run).
    threshold: Literal["youden", "sensitivity"] = "youden"  # Youden's J, or reach target_sensitivity
    target_sensitivity: float = 0.9
    calibration_bins: int = 10

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)


@dataclass
class ImageHeadConfig:
    """``head`` of ``medical-imaging``: a classifier on the image backbone's pooled features."""

    type: Literal["linear", "mlp"] = "linear"
    hidden: int = 256  # mlp: width of the hidden layer
    dropout: float = 0.2
    pos_weight: bool = True  # binary, multi-label: weight positives by negatives / positives in training (BCE)
    calibration: bool = True  # fit a post-hoc scaling on validation (Platt per output; multi-class: a temperature)


FUSIONS = ("concat", "gated", "cross-attention")
INPUTS = ("image", "text")


@dataclass
class FusionHeadConfig:
    """``head`` of ``medical-image-report``: how the image and the note are fused (:mod:`.fusion`)."""

    fusion: Literal["concat", "gated", "cross-attention"] = "concat"
    inputs: list[str] = field(default_factory=lambda: ["image", "text"])  # [image] or [text]: one input only
    hidden: int = 256  # width each input is projected to, and of the classifier's hidden layer
    dropout: float = 0.2
    modality_dropout: float = 0.2  # training: chance that each input is hidden from the head (never both)
    attention_heads: int = 4  # cross-attention
    pos_weight: bool = True
    calibration: bool = True  # as medical-imaging's; the image-alone and note-alone outputs get their own scaling


@dataclass
class ImagingPredictOptions:
    """Options of ``crossfuse predict`` for a ``medical-imaging`` run."""

    batch_size: int = field(default=32, metadata={"help": "images per forward pass"})
    heatmaps: Literal["positive", "top", "all"] = field(default="positive", metadata={
        "help": "with --explain, the findings that get a Grad-CAM map: those passing their threshold (else the "
                "most likely one), only the most likely one, or every finding"})


@dataclass
class ReportPredictOptions(ImagingPredictOptions):
    """Options of ``crossfuse predict`` for a ``medical-image-report`` run."""

    note: Optional[str] = field(default=None, metadata={
        "help": "the referral note of the image files given (a CSV/JSONL input brings its own per row); "
                "without one the image is read alone"})


def check_head_config(head: FusionHeadConfig) -> None:
    """Raise :class:`ConfigError` for head values that are well typed but unusable."""
    if not head.inputs or len(set(head.inputs)) != len(head.inputs) or set(head.inputs) - set(INPUTS):
        raise ConfigError(f"head.inputs must name image, text or both, once each; got {head.inputs}")
    if not 0 <= head.modality_dropout < 0.5:
        raise ConfigError(f"head.modality_dropout must be in [0, 0.5), got {head.modality_dropout:g}")
    if head.hidden < 1 or head.attention_heads < 1 or head.hidden % head.attention_heads:
        raise ConfigError(f"head.hidden ({head.hidden}) must be a positive multiple of head.attention_heads "
                          f"({head.attention_heads})")
    if not 0 <= head.dropout < 1:
        raise ConfigError(f"head.dropout must be in [0, 1), got {head.dropout:g}")


def check_data_config(data: MedicalDataConfig) -> None:
    """Raise :class:`ConfigError` for values that are well typed but unusable together."""
    if (data.window_center is None) != (data.window_width is None):
        raise ConfigError("data.window_center and data.window_width go together: set both (a window for every "
                          "DICOM file) or neither (each file's own window)")
    if data.window_width is not None and not data.window_width >= 1:
        raise ConfigError(f"data.window_width must be at least 1 (DICOM linear window), got {data.window_width:g}")
    if not 0 < data.target_sensitivity <= 1:
        raise ConfigError(f"data.target_sensitivity must be in (0, 1], got {data.target_sensitivity:g}")
    if data.calibration_bins < 1:
        raise ConfigError(f"data.calibration_bins must be at least 1, got {data.calibration_bins}")
    if data.uncertain_as not in (None, 0, 1):
        raise ConfigError(f"data.uncertain_as must be 0, 1 or unset, got {data.uncertain_as}")
    if len(set(data.labels)) != len(data.labels):
        raise ConfigError(f"data.labels names a class twice: {data.labels}")
    _check_augment(data.augment)
    _check_demo(data.demo)


def _check_augment(augment: AugmentConfig) -> None:
    ranges = {"rotation": (0, 180, "[0, 180]"), "translate": (0, 0.5, "[0, 0.5]"), "color_jitter": (0, 1, "[0, 1)"),
              "hflip": (0, 1, "[0, 1]"), "vflip": (0, 1, "[0, 1]")}
    for name, (low, high, shown) in ranges.items():
        value = getattr(augment, name)
        if not low <= value <= high or (name == "color_jitter" and value == 1):
            raise ConfigError(f"data.augment.{name} must be in {shown}, got {value:g}")
    for name, upper in (("scale", None), ("crop_scale", 1.0)):
        values = getattr(augment, name)
        if len(values) != 2 or not all(math.isfinite(v) for v in values) or not 0 < values[0] <= values[1] \
                or (upper is not None and values[1] > upper):
            limit = f" <= {upper:g}" if upper is not None else ""
            raise ConfigError(f"data.augment.{name} must be [low, high] with 0 < low <= high{limit}, got {values}")


def _check_demo(demo: DemoConfig) -> None:
    for name in ("train", "validation", "test"):
        if getattr(demo, name) < 1:
            raise ConfigError(f"data.demo.{name} must be at least 1 image, got {getattr(demo, name)}")
    if not 28 <= demo.size <= 256:
        raise ConfigError(f"data.demo.size must be between 28 and 256 pixels, got {demo.size}")
