"""Read ';'-separated exports into the examples finance-sentiment expects."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from crossfuse import DataError
from crossfuse_finance.data import TextExample


def read_semicolon_csv(path: str | Path, options: Any = None) -> list[TextExample]:
    """Rows of ``text;label`` under a header; column names from ``data.text_column`` / ``data.label_column``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    text_column = getattr(options, "text_column", "text")
    label_column = getattr(options, "label_column", "label")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        if not reader.fieldnames or text_column not in reader.fieldnames or label_column not in reader.fieldnames:
            raise DataError(f"{path}, line 1: expected columns {text_column!r} and {label_column!r} separated by ';', "
                            f"found {reader.fieldnames}")
        return [TextExample(row[text_column].strip(), row[label_column].strip(), f"{path}:{reader.line_num}")
                for row in reader]
