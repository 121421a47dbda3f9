"""Report pictures are written, and survive edge cases (FAR 0 on a log axis, no pairs, a lost image)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from crossfuse_face.metrics import verification_metrics
from crossfuse_face.report import draw_hardest_false_matches, draw_roc

from face_files import write_people


def test_roc_picture_from_verification_metrics(tmp_path):
    rng = np.random.default_rng(0)
    same = np.arange(400) < 200
    roc = verification_metrics(np.where(same, 0.5, 0.1) + rng.normal(0, 0.2, 400), same, None)["roc"]
    path = draw_roc(roc, tmp_path / "pictures" / "roc.png", "test ROC")
    assert path.is_file() and Image.open(path).size[0] > 100


def test_hardest_false_matches_keeps_at_most_eight(tmp_path):
    root = write_people(tmp_path / "lfw", {"A_A": 2, "B_B": 2})
    a, b = str(root / "A_A" / "A_A_0001.jpg"), str(root / "B_B" / "B_B_0001.jpg")
    pairs = [(a, b, s) for s in np.linspace(0, 1, 11)] + [(a, str(tmp_path / "gone.jpg"), 0.99)]
    path = draw_hardest_false_matches(pairs, tmp_path / "hard.png", threshold=0.5)
    assert path.is_file()
    assert draw_hardest_false_matches([], tmp_path / "none.png", threshold=0.5).is_file()
