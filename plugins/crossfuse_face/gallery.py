"""Galleries for 1:N search: enrolled embeddings and names, stored as safetensors (never the photos).

``crossfuse predict RUN --gallery staff/ probe.jpg`` enrols the identity folders of ``staff/``
(:func:`enrol`), writes ``staff.gallery.safetensors`` and ranks each probe against it
(:func:`search`); ``--gallery FILE.gallery.safetensors`` searches a saved one again (:func:`load_gallery`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from crossfuse.errors import CrossfuseError, DataError
from crossfuse.runs import atomic_write

from .lfw import FaceImage

GALLERY_SUFFIX = ".gallery.safetensors"


@dataclass
class Gallery:
    """Enrolled faces: one L2-normalised embedding per image, and the identity of each."""

    names: list[str]
    embeddings: np.ndarray


def load_gallery(path: str | Path) -> Gallery:
    """A gallery saved by :func:`enrol` (safetensors: no pickle is ever loaded)."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.name.endswith(GALLERY_SUFFIX):
        raise DataError(f"{path}: a gallery is a folder of identity folders or a *{GALLERY_SUFFIX} file")
    tensors = load_file(str(path))
    return Gallery(json.loads(bytes(tensors["names"]).decode("utf-8")), tensors["embeddings"])


def enrol(faces: Sequence[FaceImage], embed: Callable[[list[str]], np.ndarray], source: str | Path,
          output: str | Path | None, run_dir: str | Path | None) -> Gallery:
    """Embed ``faces`` (read from ``source``) and save the gallery as ``SOURCE.gallery.safetensors`` in
    ``output`` (default ``RUN_DIR/galleries/SOURCE-TIMESTAMP``); an existing file is never written over."""
    from safetensors.numpy import save_file

    name = Path(source).resolve().name
    gallery = Gallery([face.identity for face in faces], embed([face.path for face in faces]))
    folder = Path(output) if output else Path(run_dir or ".") / "galleries" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path = folder / f"{name}{GALLERY_SUFFIX}"
    if path.exists():
        raise CrossfuseError(f"{path} exists: choose another --output folder (galleries are never written over)")
    folder.mkdir(parents=True, exist_ok=True)
    encoded = np.frombuffer(json.dumps(gallery.names).encode("utf-8"), dtype=np.uint8)
    tensors = {"embeddings": gallery.embeddings.astype(np.float32), "names": encoded}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"run": str(run_dir), "source": str(source)}))
    return gallery


def search(gallery: Gallery, probes: np.ndarray, top_k: int) -> list[list[tuple[str, float]]]:
    """For each probe embedding, the ``top_k`` gallery identities by similarity, best first.

    An identity scores its best enrolled image.
    """
    results: list[list[tuple[str, float]]] = []
    for row in np.asarray(probes) @ gallery.embeddings.T:
        best: dict[str, float] = {}
        for name, score in zip(gallery.names, row):
            best[name] = max(best.get(name, -1.0), float(score))
        results.append(sorted(best.items(), key=lambda item: -item[1])[:top_k])
    return results


def describe_matches(matches: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Matches as the JSON ``predict`` prints: ``[{"identity", "similarity"}]``."""
    return [{"identity": name, "similarity": round(score, 4)} for name, score in matches]
