"""Tiny LFW-style trees and pair lists written by the face tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

# 8 people x 4 faces of 32 px for training (2 of them held out for validation), 6 test people.
TINY = ["data.demo.train_identities=8", "data.demo.train_images=4", "data.demo.test_identities=6",
        "data.demo.test_images=3", "data.demo.size=32", "data.demo.folds=2", "data.demo.pairs_per_fold=4",
        "data.validation_fraction=0.25", "data.validation_pair_count=20", "backbone.image_size=32",
        "head.embedding_dim=16", "train.batch_size=16"]


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
