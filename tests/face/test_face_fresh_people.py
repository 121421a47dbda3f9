"""examples/face_fresh_people.py: all-pairs scoring of face runs on a freshly generated population."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "face_fresh_people.py"


def _script():
    spec = importlib.util.spec_from_file_location("face_fresh_people", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_reads_tar_at_far_from_all_pairs():
    # 4 genuine pairs, 100 impostors; one impostor (1 %) outscores two of the genuine pairs.
    impostors = np.linspace(0.0, 0.5, 100)
    impostors[-1] = 0.85
    scores = np.concatenate([[0.9, 0.95, 0.8, 0.7], impostors])
    same = np.arange(len(scores)) < 4
    result = _script().summary(scores, same, [0.01, 0.001])
    assert result["genuine_pairs"] == 4 and result["impostor_pairs"] == 100
    assert result["tar@far=0.01"] == 1.0  # one false match of 100 is allowed: every genuine pair passes
    assert result["tar@far=0.001"] == 0.5  # no false match allowed: only 0.9 and 0.95 clear 0.85
    assert result["roc_auc"] == pytest.approx(1 - 2 / 400)


def test_fresh_people_are_not_the_demo_people(tmp_path):
    from crossfuse_face.synth import write_demo_dataset

    files, person = _script().fresh_people(tmp_path / "fresh", people=4, images=3, seed=99)
    assert len(files) == 12 and np.bincount(person).tolist() == [3, 3, 3, 3]
    demo = write_demo_dataset(tmp_path / "demo", train_identities=1, train_images=2, test_identities=4,
                              test_images=3, seed=0, folds=1, pairs_per_fold=1)
    assert not {f.parent.name for f in files} & {p.name for p in Path(demo["test"]).iterdir() if p.is_dir()}


@pytest.mark.slow
def test_the_script_scores_every_pair_of_a_trained_run(tiny_face_run):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tiny_face_run.run_dir), "--people", "6", "--images", "3"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"{tiny_face_run.run_dir}: roc_auc=")
    # 6 people x 3 faces: 6 x 3 genuine pairs, C(18, 2) - 18 impostor pairs.
    assert "genuine_pairs=18" in line and "impostor_pairs=135" in line
    fields = dict(part.split("=", 1) for part in line.split(": ", 1)[1].split(", ") if part.count("=") == 1)
    assert 0.0 <= float(fields["roc_auc"]) <= 1.0
