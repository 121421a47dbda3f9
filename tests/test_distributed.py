"""DDP under torchrun: two CPU processes on gloo train one run and evaluate every sample once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow  # several processes each


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_torchrun_two_cpu_processes_share_the_work(tmp_path):
    command = ["torchrun", "--nproc_per_node", "2", "-m", "crossfuse.cli", "run", "finance-sentiment",
               "--backbone", "tiny-bert", "--epochs", "1", "--device", "cpu", "--output", str(tmp_path / "run"),
               "--set", "train.progress=false", "--set", "train.batch_size=16"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # Each rank sees half of the 518 training samples: ceil(259 / 16) = 17 optimizer steps.
    assert report["steps"] == 17
    for split in ("validation", "test"):
        matrix = report["splits"][split]["confusion_matrix"]
        assert sum(map(sum, matrix)) == report["sizes"][split]  # gathered: every sample exactly once
    assert result.stdout.count("run directory:") == 1  # only rank 0 prints and writes


IMAGE_TASKS = {
    # task: (tiny overrides, the metric that counts evaluated samples)
    "driving-detection": (["data.demo.train=12", "data.demo.validation=6", "data.demo.test=6", "data.demo.width=160",
                           "data.demo.height=48", "head.strides=[4,8,16]", "head.min_size=48", "head.max_size=160",
                           "train.batch_size=4"], "images"),
    "security-face-match": (["data.demo.train_identities=8", "data.demo.train_images=3", "data.demo.test_identities=6",
                             "data.demo.test_images=3", "data.demo.size=32", "data.demo.folds=2",
                             "data.demo.pairs_per_fold=4", "data.validation_identities=0.25",
                             "data.validation_pair_count=20", "backbone.image_size=32", "train.batch_size=6"], "n_images"),
}


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
@pytest.mark.parametrize("task", sorted(IMAGE_TASKS))
def test_torchrun_image_tasks_gather_every_evaluation_sample_once(tmp_path, task):
    overrides, counted = IMAGE_TASKS[task]
    command = ["torchrun", "--nproc_per_node", "2", "-m", "crossfuse.cli", "run", task, "--backbone", "tiny-cnn",
               "--epochs", "1", "--device", "cpu", "--output", str(tmp_path / "run"), "--set", "train.progress=false"]
    for override in overrides:
        command += ["--set", override]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # 12 training images (driving) or 6 people x 3 faces (face) split over 2 ranks, batches of 4 / 6.
    assert report["steps"] == {"driving-detection": 2, "security-face-match": 2}[task]
    for split in ("validation", "test"):
        assert report["splits"][split][counted] == report["sizes"][split]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_without_output_every_rank_writes_into_rank_zeros_run_directory(tmp_path):
    command = ["torchrun", "--nproc_per_node", "2", "-m", "crossfuse.cli", "run", "finance-sentiment",
               "--backbone", "tiny-bert", "--device", "cpu", "--set", "train.progress=false",
               "--set", "train.max_steps=2", "--set", "train.epochs=1"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs" / "finance-sentiment").iterdir())
    assert len(runs) == 1 and (runs[0] / "report.json").is_file()
