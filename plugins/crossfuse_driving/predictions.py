"""Where ``crossfuse predict`` leaves a detection run's results: ``detections.json`` and drawn images.

Earlier results are never written over: a chosen ``--output`` that already holds a
``detections.json`` is refused, and the default folder is a new ``RUN_DIR/predictions/TIMESTAMP``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from crossfuse.errors import CrossfuseError
from crossfuse.runs import atomic_write


def prediction_folder(output: str | None, run_dir: Path | None) -> Path | None:
    """``output`` if it holds no ``detections.json`` yet; by default a new timestamped folder of the
    run (``-2``, ``-3`` ... when two predictions start in the same second); None for Python use
    without a run folder (results are only returned)."""
    if output:
        folder = Path(output)
        if (folder / "detections.json").exists():
            raise CrossfuseError(f"{folder / 'detections.json'} exists: choose another --output folder "
                                 f"(predictions are never written over)")
        return folder
    if run_dir is None:
        return None
    base = Path(run_dir) / "predictions" / time.strftime("%Y%m%d-%H%M%S")
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def write_predictions(results: list[dict[str, Any]], folder: Path, draw: bool = True) -> None:
    """``detections.json`` in ``folder`` and, with ``draw``, one PNG per image with its boxes
    (each result then names it under ``drawn``)."""
    from .report import draw_boxes

    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for result in results:
        if draw:
            name = _unique_name(Path(result["input"]).stem, used) + ".png"
            draw_boxes(result["input"], [], result["detections"], folder / name)
            result["drawn"] = str(folder / name)
    atomic_write(folder / "detections.json", json.dumps(results, indent=2))


def _unique_name(stem: str, used: set[str]) -> str:
    # two inputs from different folders may share a file name: the second becomes NAME-2.png
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return name
