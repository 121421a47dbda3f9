"""What the medical tasks train on and predict from: an image with its encoded target.

The readers give :class:`~crossfuse_medical.images.MedicalImage` items, labelled the way their
source names them. :func:`encode` lines every split up with the run's
:class:`~crossfuse_medical.labels.LabelSpace` once, so training, evaluation and balanced sampling
read one target per :class:`Example`. :func:`stratified_split` carves validation or test out of a
training source with every class (or combination of findings) on both sides where it can, and
:func:`read_cases` reads the image + note tables ``crossfuse predict`` takes for the fusion task.
No torch here.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from crossfuse.errors import DataError
from crossfuse.media import read_text
from crossfuse.task import carve_count

from .images import MedicalImage, input_image
from .labels import LabelSpace
from .tables import IMAGE_COLUMNS

CASE_TABLES = (".csv", ".tsv", ".jsonl")  # predict inputs of the fusion task that pair images with notes


@dataclass(frozen=True, eq=False)
class Example:
    """One image and its target in the run's label space.

    ``target``: ``(class id,)`` for multi-class; one 0/1 per output for binary (one output) and
    multi-label; ``None`` for an unlabelled ``predict`` input.
    """

    image: MedicalImage
    target: Optional[tuple[int, ...]] = None

    @property
    def note(self) -> Optional[str]:
        """The referral note that came with the image, if any."""
        return self.image.note


def encode(space: LabelSpace, samples: Sequence[MedicalImage], split: str) -> list[Example]:
    """``samples`` with their targets in ``space``; a label the space does not know is a DataError
    naming the sample (raised before anything is written)."""
    if not samples:
        return []
    targets = space.targets(samples, split)
    rows = targets[:, None] if targets.ndim == 1 else targets
    return [Example(sample, tuple(int(v) for v in row)) for sample, row in zip(samples, rows)]


def sampling_key(example: Example, space: LabelSpace) -> Any:
    """The class of an example for ``train.sampler: balanced``: its class id, or for multi-label the
    tuple of its findings (so rare combinations are drawn as often as common ones)."""
    if space.kind == "multilabel":
        return tuple(i for i, value in enumerate(example.target or ()) if value)
    return int((example.target or (0,))[0])


def source_key(sample: MedicalImage) -> Any:
    """The class of a sample as its source names it (before any label space exists): the class
    name, or the tuple of finding names present."""
    if len(sample.labels) == 1:
        index = sample.labels[0]
        return sample.classes[index] if 0 <= index < len(sample.classes) else index
    return tuple(name for name, value in zip(sample.classes, sample.labels) if value)


def stratified_split(samples: list[Any], fraction: float, name: str, seed: int) -> tuple[list[Any], list[Any]]:
    """Move a seeded ``fraction`` of ``samples`` (:class:`MedicalImage` items) into split ``name``,
    keeping class shares (multi-label: shares of finding combinations, rare combinations pooled)
    on both sides. Data too small to stratify is split at random."""
    from sklearn.model_selection import train_test_split

    carved = carve_count(len(samples), fraction, name)
    keys = [_text(source_key(sample)) for sample in samples]
    counts = Counter(keys)
    keys = [key if counts[key] >= 2 else "(rare)" for key in keys]
    counts = Counter(keys)
    classes = len(counts)
    enough = min(counts.values()) >= 2 and min(carved, len(samples) - carved) >= classes
    rest, held = train_test_split(samples, test_size=carved, random_state=seed, stratify=keys if enough else None)
    return list(rest), list(held)


def _text(key: Any) -> str:
    """A class key as one string: scikit-learn stratifies on an array of labels of one type."""
    return "|".join(map(str, key)) if isinstance(key, tuple) else str(key)


# -- predict inputs of the fusion task --------------------------------------------------------------


def read_cases(path: str | Path, options: Any = None) -> list[tuple[str, MedicalImage]]:
    """``(where, image with its note)`` for each row of a case table.

    A CSV or TSV with an image column (``data.image_column``, else the first of
    :data:`~crossfuse_medical.tables.IMAGE_COLUMNS`) and a note column (``data.note_column``,
    default ``note``), or JSON Lines with ``image`` and ``note`` keys. Relative image paths start
    at ``data.image_root``, else the table's folder. A blank note means "no note".
    """
    path = Path(path)
    records = _jsonl_records(path) if path.suffix.lower() == ".jsonl" else _csv_records(path, options)
    root = Path(getattr(options, "image_root", None) or path.parent)
    cases = []
    for where, image, note in records:
        file = Path(image) if Path(image).is_absolute() else root / image
        if not file.is_file():
            raise DataError(f"{where}: image {file} does not exist (relative paths start at {root})")
        sample = input_image(file)
        cases.append((where, MedicalImage(sample.source, (), (), where, note.strip() or None, sample.channels)))
    if not cases:
        raise DataError(f"{path}: no rows; expected one image (and its note) per row")
    return cases


def _csv_records(path: Path, options: Any) -> list[tuple[str, str, str]]:
    text = read_text(path, "utf-8-sig")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header = [name.strip() for name in reader.fieldnames or []]
    image_column = _column(header, [getattr(options, "image_column", None)] if getattr(options, "image_column", None)
                           else list(IMAGE_COLUMNS), path, "data.image_column")
    note_column = _column(header, [getattr(options, "note_column", None) or "note"], path, "data.note_column")
    records = []
    for row in reader:
        values = {(key or "").strip(): value or "" for key, value in row.items()}
        if not any(v.strip() for v in values.values()):
            continue
        where = f"{path}, line {reader.line_num}"
        if not values[image_column].strip():
            raise DataError(f"{where}: column {image_column!r} is empty; expected the image file")
        records.append((where, values[image_column].strip(), values[note_column]))
    return records


def _column(header: list[str], wanted: list[str], path: Path, key: str) -> str:
    for name in wanted:
        found = next((h for h in header if h.lower() == name.strip().lower()), None)
        if found is not None:
            return found
    raise DataError(f"{path}: no column {' or '.join(map(repr, wanted))} ({key}); columns: {', '.join(header)}. "
                    f"A case table has one row per image with its referral note")


def _jsonl_records(path: Path) -> list[tuple[str, str, str]]:
    records = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg}); expected {{\"image\": ..., \"note\": ...}}") from None
        if not isinstance(record, dict) or not isinstance(record.get("image"), str):
            raise DataError(f"{where}: expected an object with an \"image\" path and a \"note\"")
        note = record.get("note") or ""
        if not isinstance(note, str):
            raise DataError(f"{where}: \"note\" must be text, got {type(note).__name__}")
        records.append((where, record["image"], note))
    return records
