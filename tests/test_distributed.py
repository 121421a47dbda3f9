"""DDP under torchrun: two CPU processes on gloo train one run and evaluate every sample once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest


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
