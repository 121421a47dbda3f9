"""Reading leaf-disease data: a CSV manifest of ``image,label`` rows (paths relative to the
manifest), or a folder holding ``train.csv`` and optionally ``validation.csv`` and ``test.csv``.

crossfuse calls a reader as ``reader(path, options)``, ``options`` being the task's ``data``
config section, and resolves ``data.format`` (``auto`` asks ``is_split_folder``, then the
``.csv`` extension). Bad input is a :class:`~crossfuse.errors.DataError` naming the file and line.
Files are only checked to exist here; the task opens them in ``preprocess``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossfuse.datasets import Splits
from crossfuse.errors import DataError
from crossfuse.media import IMAGE_EXTENSIONS

SPLIT_FILES = {"train": "train.csv", "validation": "validation.csv", "test": "test.csv"}


@dataclass(frozen=True)
class Example:
    """One labelled sample as read: the image file, its label, and where it was listed."""

    path: str
    label: str
    where: str


def is_split_folder(path: Path) -> bool:
    """A folder holding ``train.csv`` (cheap: ``data.format=auto`` asks every registered format)."""
    return path.is_dir() and (path / SPLIT_FILES["train"]).is_file()


def read_manifest(path: Path, options: Any = None) -> list[Example] | Splits:
    """The examples of one manifest; for a split folder, those of each of its manifests as :class:`Splits`."""
    path = Path(path)
    if path.is_dir():
        if not is_split_folder(path):
            raise DataError(f"{path}: expected a .csv manifest or a folder holding {SPLIT_FILES['train']}")
        return Splits(**{split: read_manifest(path / name, options) for split, name in SPLIT_FILES.items()
                         if (path / name).is_file()})
    column = getattr(options, "input_column", "image")
    label_column = getattr(options, "label_column", "label")
    examples = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.DictReader(handle)
        if column not in (rows.fieldnames or []) or label_column not in (rows.fieldnames or []):
            raise DataError(f"{path}, line 1: expected a header with the columns {column!r} and {label_column!r} "
                            f"(data.input_column, data.label_column), found {rows.fieldnames}")
        for row in rows:
            where = f"{path}, line {rows.line_num}"
            name, label = (row[column] or "").strip(), (row[label_column] or "").strip()
            if not name or not label:
                raise DataError(f"{where}: expected a {column} path and a {label_column}, found {row}")
            file = path.parent / name
            if file.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(f"{where}: {name!r} is not a image file; expected {', '.join(IMAGE_EXTENSIONS)}")
            if not file.is_file():
                raise DataError(f"{where}: no such file {name!r} (paths are relative to the manifest's folder)")
            examples.append(Example(str(file), label, where))
    return examples
