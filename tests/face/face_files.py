"""Tiny LFW-style trees and pair lists written by the face tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def write_people(root: Path, counts: dict[str, int], size: int = 8) -> Path:
    """``root/<name>/<name>_000k.jpg`` for k = 1..count, each a flat colour that differs per file."""
    for p, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(1, count + 1):
            Image.new("RGB", (size, size), (40 * p % 256, 30 * k % 256, 128)).save(root / name / f"{name}_{k:04d}.jpg")
    return root


def write_lines(path: Path, lines: list[str]) -> Path:
    """A text file with one line per item (and a final newline, as LFW's files have)."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
