"""Small file writers for the finance tests."""

from __future__ import annotations


def write_csv(path, rows, header=("text", "label")):
    """A UTF-8 CSV with a header; returns the path."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path
