"""The PlantVillage layout (Hughes & Salathé, 2015): one folder per class named ``Crop___Disease``.

    Tomato___Early_blight/0a1b....JPG     Corn_(maize)___Common_rust_/...     Tomato___healthy/...

Its derived releases split it into ``train/`` and ``valid/`` (the Kaggle "New Plant Diseases
Dataset"), sometimes ``test/``, each holding the same class folders; the augmented release adds a
``Background_without_leaves`` class, which is not a disease and is skipped. Folder names carry
quirks that the labels smooth over: a trailing underscore (``Common_rust_``), spaces
(``Spider_mites Two-spotted_spider_mite``), a parenthesis in the crop (``Corn_(maize)``).

``data.label_from`` chooses the label: ``disease`` (``early_blight``, ``healthy``: one classifier
across crops) or ``crop_disease`` (``tomato/early_blight``: the 38 PlantVillage classes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from crossfuse.datasets import Splits
from crossfuse.errors import DataError
from crossfuse.media import IMAGE_EXTENSIONS

from .data import Example

SPLIT_FOLDERS = {"train": ("train",), "validation": ("valid", "val", "validation"), "test": ("test",)}
NOT_A_CLASS = {"background_without_leaves"}


def is_plantvillage(path: Path) -> bool:
    """A folder of ``Crop___Disease`` folders, or of split folders holding them (cheap: names only)."""
    if not path.is_dir():
        return False
    return _has_classes(path) or any(_has_classes(folder) for folder in _split_folders(path).values())


def read_plantvillage(path: Path, options: Any = None) -> list[Example] | Splits:
    """The labelled images of a PlantVillage folder; with split folders, :class:`Splits`."""
    path = Path(path)
    splits = _split_folders(path)
    if not splits:
        return _read_classes(path, options)
    if "train" not in splits:
        raise DataError(f"{path}: holds {', '.join(folder.name + '/' for folder in splits.values())} but no train/")
    return Splits(**{split: _read_classes(folder, options) for split, folder in splits.items()})


def disease_label(name: str) -> str:
    """``Early_blight`` -> ``early_blight``; ``Common_rust_`` -> ``common_rust``;
    ``Spider_mites Two-spotted_spider_mite`` -> ``spider_mites_two-spotted_spider_mite``."""
    return re.sub(r"[\s_]+", "_", name.strip(" _")).lower()


def crop_label(name: str) -> str:
    """``Corn_(maize)`` -> ``corn``; ``Pepper,_bell`` -> ``pepper_bell``; ``Tomato`` -> ``tomato``."""
    return re.sub(r"[\s_,]+", "_", re.sub(r"\(.*?\)", "", name)).strip("_").lower()


def _split_folders(path: Path) -> dict[str, Path]:
    return {split: path / name for split, names in SPLIT_FOLDERS.items() for name in names if (path / name).is_dir()}


def _has_classes(folder: Path) -> bool:
    return any(child.is_dir() and "___" in child.name for child in folder.iterdir())


def _read_classes(folder: Path, options: Any) -> list[Example]:
    by_crop = getattr(options, "label_from", "disease") == "crop_disease"
    examples = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        if child.name.lower() in NOT_A_CLASS:
            continue
        crop, separator, disease = child.name.partition("___")
        if not separator or not crop.strip(" _") or not disease.strip(" _"):
            raise DataError(f"{child}: not a PlantVillage class folder; expected Crop___Disease (three underscores), "
                            f"e.g. Tomato___Early_blight or Tomato___healthy")
        label = f"{crop_label(crop)}/{disease_label(disease)}" if by_crop else disease_label(disease)
        images = sorted(p for p in child.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise DataError(f"{child}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this class folder")
        examples += [Example(str(image), label, f"{child}/{image.name}") for image in images]
    if not examples:
        raise DataError(f"{folder}: no Crop___Disease class folders")
    return examples
