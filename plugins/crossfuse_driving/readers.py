"""The driving formats as the core's dataset registry sees them: readers and layout tests.

The core resolves ``data.format`` (``auto`` included) and calls ``reader(path, options)`` with the
task's ``data`` section as ``options``; each reader below takes the ``data.*`` keys its format
knows and leaves the rest. ``auto`` asks the ``is_*`` functions, which only look at folder names,
so detection stays cheap on a large dataset. COCO is recognised by its ``.json`` extension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .formats import DetectionSample, read_coco, read_kitti, read_voc


def kitti_reader(path: str | Path, options: Any = None) -> list[DetectionSample]:
    """KITTI ``training/{image_2,label_2}``; ``data.image_dir`` / ``data.label_dir`` rename the folders."""
    return read_kitti(path, getattr(options, "image_dir", None), getattr(options, "label_dir", None))


def coco_reader(path: str | Path, options: Any = None) -> list[DetectionSample]:
    """A COCO instances JSON; images under ``data.image_root`` (default: the JSON's folder)."""
    return read_coco(path, getattr(options, "image_root", None))


def voc_reader(path: str | Path, options: Any = None) -> list[DetectionSample]:
    """A Pascal VOC root; ``data.image_set`` reads only the ids of ``ImageSets/Main/<name>.txt``."""
    return read_voc(path, getattr(options, "image_set", None))


def is_kitti(path: str | Path) -> bool:
    """A folder holding ``label_2/``, or a ``training/label_2/`` below it."""
    path = Path(path)
    return path.is_dir() and ((path / "label_2").is_dir() or (path / "training" / "label_2").is_dir())


def is_voc(path: str | Path) -> bool:
    """A folder holding ``Annotations/``."""
    path = Path(path)
    return path.is_dir() and (path / "Annotations").is_dir()
