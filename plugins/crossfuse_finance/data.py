"""Readers for labelled financial text. Each returns :class:`TextExample` items with their origin.

Formats: Financial PhraseBank (``Sentences_50Agree.txt`` ...: ``sentence@label``, latin-1, split
on the *last* ``@``), CSV, TSV and JSON Lines with configurable column names. Errors name the
file, the line and what was expected.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from crossfuse.errors import DataError
from crossfuse.media import lines, read_text


@dataclass(frozen=True)
class TextExample:
    """One labelled text; ``where`` is ``file:line`` for error messages."""

    text: str
    label: str
    where: str = ""


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    return path


def read_phrasebank(path: str | Path, options: Any = None) -> list[TextExample]:
    """Financial PhraseBank: one ``sentence@label`` per line, latin-1 unless ``data.encoding`` says otherwise."""
    path = _check_file(path)
    encoding = getattr(options, "encoding", None) or "latin-1"
    examples = []
    for number, line in enumerate(lines(read_text(path, encoding)), start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("@")
        if not sep:
            raise DataError(f"{path}, line {number}: expected 'sentence@label' (PhraseBank format), found no '@' "
                            f"in {line[:60]!r}")
        examples.append(TextExample(text.strip(), label.strip(), f"{path}, line {number}"))
    return examples


def _columns(options: Any) -> tuple[str, str]:
    return getattr(options, "text_column", "text"), getattr(options, "label_column", "label")


def _from_rows(rows: Iterable[tuple[int, dict[str, Any]]], path: Path, options: Any) -> list[TextExample]:
    text_column, label_column = _columns(options)
    examples = []
    for number, row in rows:
        missing = [c for c in (text_column, label_column) if c not in row]
        if missing:
            found = ", ".join(repr(k) for k in row) or "(none)"
            raise DataError(f"{path}, line {number}: missing column {missing[0]!r}; found {found}. "
                            f"Set data.text_column / data.label_column to the right names")
        text, label = row[text_column], row[label_column]
        if text is None or not str(text).strip() or label is None or not str(label).strip():
            raise DataError(f"{path}, line {number}: empty {text_column if not str(text or '').strip() else label_column!r}")
        examples.append(TextExample(str(text).strip(), str(label).strip(), f"{path}, line {number}"))
    return examples


def _read_delimited(path: str | Path, options: Any, delimiter: str) -> list[TextExample]:
    path = _check_file(path)
    encoding = getattr(options, "encoding", None) or "utf-8-sig"
    # newline="" keeps line breaks inside quoted fields, as the csv module requires.
    reader = csv.DictReader(io.StringIO(read_text(path, encoding), newline=""), delimiter=delimiter)
    if reader.fieldnames is None:
        raise DataError(f"{path}: the file is empty; expected a header line with "
                        f"{' and '.join(map(repr, _columns(options)))} columns")
    header_missing = [c for c in _columns(options) if c not in reader.fieldnames]
    if header_missing:
        raise DataError(f"{path}, line 1: no column {header_missing[0]!r} in the header "
                        f"({', '.join(map(repr, reader.fieldnames))}); set data.text_column / data.label_column")
    return _from_rows(((reader.line_num, row) for row in reader), path, options)


def read_csv(path: str | Path, options: Any = None) -> list[TextExample]:
    """CSV with a header; columns ``data.text_column`` and ``data.label_column``; UTF-8."""
    return _read_delimited(path, options, ",")


def read_tsv(path: str | Path, options: Any = None) -> list[TextExample]:
    """Tab-separated values with a header; same columns as CSV."""
    return _read_delimited(path, options, "\t")


def read_jsonl(path: str | Path, options: Any = None) -> list[TextExample]:
    """JSON Lines: one object per line with the text and label keys."""
    path = _check_file(path)
    rows = []
    for number, line in enumerate(lines(read_text(path, getattr(options, "encoding", None) or "utf-8")), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return _from_rows(rows, path, options)
