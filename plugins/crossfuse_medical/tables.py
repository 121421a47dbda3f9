"""Label tables: a CSV (or TSV) with one row per image, read into keys, labels and notes.

The same table serves a CSV dataset of image paths and the labels of a DICOM folder (keyed by
file name or ``SOPInstanceUID``). Labels come in three shapes, chosen by the config:

- one label column of class names or class ids (``data.label_columns: [diagnosis]``);
- several 0/1 columns, one per finding (``data.label_columns: [effusion, nodule]``, or
  ``data.labels`` naming columns): multi-label. CheXpert's -1 (uncertain) and blank cells are
  refused unless ``data.uncertain_as`` maps them to 0 or 1;
- one column of findings joined by ``data.label_separator`` (ChestX-ray14's
  ``Cardiomegaly|Effusion``; ``data.no_finding`` values mean none): multi-label.

Every error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from crossfuse.errors import DataError
from crossfuse.media import read_text

IMAGE_COLUMNS = ("image", "path", "file", "filename", "file_name", "image index", "sopinstanceuid")
LABEL_COLUMNS = ("label", "labels", "class", "target", "diagnosis", "finding labels")
TRUE_WORDS, FALSE_WORDS, UNCERTAIN_WORDS = {"1", "true", "yes"}, {"0", "false", "no"}, {"-1", ""}


@dataclass(frozen=True)
class Row:
    """One table row: ``key`` is the image column's value; ``labels`` follow :class:`MedicalImage`."""

    key: str
    labels: tuple[int, ...]
    where: str
    note: Optional[str] = None


@dataclass(frozen=True)
class LabelTable:
    """The rows of a table and the class (or finding) names their labels refer to."""

    rows: list[Row]
    classes: tuple[str, ...]
    image_column: str


def read_label_table(path: str | Path, options: Any = None) -> LabelTable:
    """Read ``path`` with the column options of ``options`` (a data config; missing fields take defaults)."""
    path = Path(path)
    header, records = _records(path)
    image_column = _image_column(header, getattr(options, "image_column", None), path)
    label_columns = _label_columns(header, options, path)
    note_column = getattr(options, "note_column", "note")
    labels, classes = _labels(records, label_columns, options, path)
    rows = []
    for (line, record), row_labels in zip(records, labels):
        key = record[image_column].strip()
        if not key:
            raise DataError(f"{path}, line {line}: column {image_column!r} is empty; expected the image")
        note = record.get(note_column, "").strip() if note_column in header else ""
        rows.append(Row(key, row_labels, f"{path}, line {line}", note or None))
    return LabelTable(rows, classes, image_column)


def _records(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, {column: value})`` per non-blank row."""
    text = read_text(path, "utf-8-sig")  # -sig: spreadsheets write a byte-order mark
    reader = csv.reader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path}: the table is empty; expected a header row, then one row per image")
    header = [name.strip() for name in rows[0][1]]
    records = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} values for {len(header)} columns "
                            f"({', '.join(header)})")
        records.append((line, dict(zip(header, row))))
    if not records:
        raise DataError(f"{path}: the table has a header but no rows")
    return header, records


def _find(header: Sequence[str], wanted: str) -> Optional[str]:
    """The header name equal to ``wanted`` ignoring case and surrounding spaces."""
    return next((name for name in header if name.lower() == wanted.strip().lower()), None)


def _image_column(header: list[str], chosen: Optional[str], path: Path) -> str:
    if chosen:
        found = _find(header, chosen)
        if found is None:
            raise DataError(f"{path}: no column {chosen!r} (data.image_column); columns: {', '.join(header)}")
        return found
    for guess in IMAGE_COLUMNS:
        if (found := _find(header, guess)) is not None:
            return found
    raise DataError(f"{path}: cannot tell which column names the image (looked for {', '.join(IMAGE_COLUMNS)}); "
                    f"columns: {', '.join(header)}. Set data.image_column")


def _label_columns(header: list[str], options: Any, path: Path) -> list[str]:
    chosen = list(getattr(options, "label_columns", None) or [])
    names = list(getattr(options, "labels", None) or [])
    if not chosen and len(names) > 1 and all(_find(header, n) for n in names):
        chosen = names  # data.labels names the 0/1 columns of a multi-label table
    if chosen:
        missing = [c for c in chosen if _find(header, c) is None]
        if missing:
            raise DataError(f"{path}: no column {', '.join(map(repr, missing))} (data.label_columns); columns: "
                            f"{', '.join(header)}")
        return [_find(header, c) for c in chosen]  # type: ignore[misc]
    for guess in LABEL_COLUMNS:
        if (found := _find(header, guess)) is not None:
            return [found]
    raise DataError(f"{path}: cannot tell which column holds the labels (looked for {', '.join(LABEL_COLUMNS)}); "
                    f"columns: {', '.join(header)}. Set data.label_columns: one column of classes, or several "
                    f"0/1 columns for multi-label data")


def _labels(records, columns: list[str], options: Any, path: Path) -> tuple[list[tuple[int, ...]], tuple[str, ...]]:
    if len(columns) > 1:
        return _binary_columns(records, columns, options, path)
    if getattr(options, "label_separator", None):
        return _separated(records, columns[0], options, path)
    return _single_column(records, columns[0], options, path)


def _as_int(text: str) -> Optional[int]:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _single_column(records, column: str, options: Any, path: Path) -> tuple[list[tuple[int, ...]], tuple[str, ...]]:
    """Class ids (``0``, ``1`` ...) or class names; ``data.labels`` names the ids or fixes the order of the names."""
    names = [str(n) for n in (getattr(options, "labels", None) or [])]
    values = []
    for line, record in records:
        value = record[column].strip()
        if not value:
            raise DataError(f"{path}, line {line}: column {column!r} is empty; expected the image's class")
        values.append((line, value))
    ids = [_as_int(value) for _, value in values]
    if all(i is not None for i in ids):
        classes = tuple(names) or tuple(str(i) for i in range(max(ids) + 1))  # type: ignore[type-var]
        for (line, value), i in zip(values, ids):
            if not 0 <= i < len(classes):  # type: ignore[operator]
                raise DataError(f"{path}, line {line}: class id {value} in column {column!r} is out of range; "
                                f"expected 0 to {len(classes) - 1}" + (f" (data.labels: {', '.join(names)})"
                                                                       if names else ""))
        return [(int(i),) for i in ids], classes  # type: ignore[arg-type]
    classes = tuple(names) or tuple(sorted({value for _, value in values}))
    index = {name: i for i, name in enumerate(classes)}
    for line, value in values:
        if value not in index:
            raise DataError(f"{path}, line {line}: class {value!r} in column {column!r} is not in data.labels "
                            f"({', '.join(classes)})")
    return [(index[value],) for _, value in values], classes


def _separated(records, column: str, options: Any, path: Path) -> tuple[list[tuple[int, ...]], tuple[str, ...]]:
    """Findings joined by a separator in one column; a lone finding makes a binary task."""
    separator = options.label_separator
    empty = {v.lower() for v in (getattr(options, "no_finding", None) or [])}
    per_row = []
    for line, record in records:
        found = [part.strip() for part in record[column].split(separator) if part.strip()]
        per_row.append((line, [f for f in found if f.lower() not in empty]))
    names = [str(n) for n in (getattr(options, "labels", None) or [])]
    classes = tuple(names) or tuple(sorted({f for _, found in per_row for f in found}))
    for line, found in per_row:
        unknown = [f for f in found if f not in classes]
        if unknown:
            raise DataError(f"{path}, line {line}: finding {unknown[0]!r} in column {column!r} is not in data.labels "
                            f"({', '.join(classes)})")
    if len(classes) == 1:  # one finding: present or not, a binary task
        absent = (getattr(options, "no_finding", None) or ["no finding"])[0]
        return [(int(bool(found)),) for _, found in per_row], (absent, classes[0])
    return [tuple(int(name in found) for name in classes) for _, found in per_row], classes


def _binary_columns(records, columns: list[str], options: Any, path: Path) -> tuple[list[tuple[int, ...]], tuple[str, ...]]:
    """One 0/1 column per finding."""
    uncertain = getattr(options, "uncertain_as", None)
    labels = []
    for line, record in records:
        row = []
        for column in columns:
            value = record[column].strip().lower()
            if value.endswith(".0"):
                value = value[:-2]  # spreadsheets and pandas write 1.0 for 1
            if value in TRUE_WORDS or value in FALSE_WORDS:
                row.append(int(value in TRUE_WORDS))
            elif value in UNCERTAIN_WORDS and uncertain is not None:
                row.append(int(uncertain))
            elif value in UNCERTAIN_WORDS:
                raise DataError(f"{path}, line {line}, column {column!r}: {'blank' if not value else 'uncertain (-1)'}"
                                f"; expected 0 or 1. Set data.uncertain_as to 0 or 1 to read CheXpert-style "
                                f"uncertain and blank labels")
            else:
                raise DataError(f"{path}, line {line}, column {column!r}: {record[column]!r} is not a 0/1 label")
        labels.append(tuple(row))
    return labels, tuple(columns)
