"""The examples run as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a subprocess each, training a model

ROOT = Path(__file__).parent.parent


def test_python_api_example_runs_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py"), "--backbone", "tiny-bert",
                             "--output", str(tmp_path)], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tasks: [") and "'finance-sentiment'" in lines[0]
    assert any(line.startswith("test macro-F1 ") for line in lines)
    assert "feature vector: (1, 64)" in lines
    assert any(line.startswith("student ") and "vs teacher" in line for line in lines)
    assert lines[-1].endswith("MB in fp32") and "int8 macro-F1" in lines[-1]
    for run in ("finance", "student"):
        assert (tmp_path / run / "report.json").is_file()
    assert (tmp_path / "finance" / "export" / "onnx-int8" / "model.onnx").is_file()


def test_python_api_example_leaves_no_temporary_folder_behind(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py"), "--backbone", "tiny-bert"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("crossfuse-example-")]
