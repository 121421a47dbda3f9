"""Score trained face runs on people nobody has seen: every genuine pair and every impostor pair.

A run's own validation and test splits hold a few thousand pairs, so TAR at FAR 1e-2 rests on a
few dozen impostor pairs and moves by several points between two equally good models. This
script draws a fresh population from the synthetic face generator (a seed the demo does not
use), embeds each face once with each run, and scores all pairs: with 300 people of 10 faces,
13,500 genuine pairs and 4,485,000 impostor pairs. It is how the face default's settings were
compared (plugins/crossfuse_face/README.md); it reads no test split.

    python examples/face_fresh_people.py RUN_DIR [RUN_DIR ...]
    python examples/face_fresh_people.py RUN_DIR --people 300 --images 10 --seed 99
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import crossfuse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="security-face-match run folders")
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--images", type=int, default=10, help="faces per person")
    parser.add_argument("--seed", type=int, default=99, help="the generator seed (the demo uses 0)")
    parser.add_argument("--fars", type=float, nargs="+", default=[1e-2, 1e-3])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crossfuse-fresh-people-") as folder:
        faces, people = fresh_people(Path(folder), args.people, args.images, args.seed)
        for run in args.runs:
            scores = all_pair_scores(crossfuse.load(run), faces, people)
            print(f"{run}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in summary(*scores, args.fars).items()), flush=True)


def fresh_people(folder: Path, people: int, images: int, seed: int) -> tuple[list[Path], np.ndarray]:
    """Write ``people`` synthetic people with ``images`` faces each; their files and person numbers."""
    from crossfuse_face.synth import write_demo_dataset

    # The generator writes a training part too; one person of two faces is the least it takes.
    written = write_demo_dataset(folder, train_identities=1, train_images=2, test_identities=people,
                                 test_images=images, seed=seed, folds=1, pairs_per_fold=1)
    files = sorted(Path(written["test"]).glob("*/*.jpg"))
    _, person = np.unique([f.parent.name for f in files], return_inverse=True)
    return files, person


def all_pair_scores(predictor: Any, faces: list[Path], person: np.ndarray,
                    batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-person flag of every unordered pair of ``faces``."""
    # The task's own embedding path: preprocessing, flip test and normalisation as in evaluation.
    embeddings = torch.from_numpy(predictor.task.embed(predictor.model, [str(f) for f in faces], batch_size))
    upper = torch.triu_indices(len(faces), len(faces), offset=1)
    scores = (embeddings @ embeddings.T)[upper[0], upper[1]].numpy()
    return scores, person[upper[0].numpy()] == person[upper[1].numpy()]


def summary(scores: np.ndarray, same: np.ndarray, fars: list[float]) -> dict[str, Any]:
    """ROC AUC, EER and TAR at each FAR (the face plugin's definitions), with the pair counts."""
    from sklearn.metrics import roc_auc_score

    from crossfuse_face.metrics import equal_error_rate, tar_at_far

    result: dict[str, Any] = {"roc_auc": float(roc_auc_score(same, scores)),
                              "eer": equal_error_rate(scores, same)[0]}
    for far in fars:
        result[f"tar@far={far:g}"] = tar_at_far(scores, same, far)[0]
    result.update(genuine_pairs=int(same.sum()), impostor_pairs=int((~same).sum()))
    return result


if __name__ == "__main__":
    main()
