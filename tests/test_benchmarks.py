"""The benchmark scripts run with their smallest settings and print the ratios they promise.

Speed is never asserted here (DESIGN.md section 7): only that each script exits 0 and reports
every number it is for. Each runs as a subprocess with one thread, so that other jobs on a small
machine slow it down as little as possible.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RATIO = re.compile(r"^ratio crossfuse / plain = \d+\.\d{3}$", re.MULTILINE)
LOADING = re.compile(r"data loading, (\d+) workers: .* ratio loading / training = \d+\.\d\d$", re.MULTILINE)


def run_script(name: str, *args: str) -> str:
    """Run ``benchmarks/NAME ARGS``; return its standard output after checking it exited 0."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_trainer_overhead_prints_both_loops_and_their_ratio():
    out = run_script("trainer_overhead.py", "--steps", "2", "--warmup", "1", "--batch-size", "4")
    assert re.search(r"^plain PyTorch +\d+\.\d ms/step$", out, re.MULTILINE)
    assert re.search(r"^crossfuse +\d+\.\d ms/step$", out, re.MULTILINE)
    assert RATIO.search(out)


@pytest.mark.slow
def test_throughput_prints_step_sample_mfu_and_loading_ratios(tmp_path):
    out = run_script("throughput.py", "--task", "finance-sentiment", "--steps", "2", "--warmup", "1",
                     "--batch-size", "4", "--loader-batches", "3", "--out", str(tmp_path / "result.json"))
    assert RATIO.search(out)
    assert len(re.findall(r"samples/s +MFU +\d+\.\d\d %$", out, re.MULTILINE)) == 2  # plain and crossfuse
    assert [int(w) for w in LOADING.findall(out)] == [0, 2]
    [result] = json.loads((tmp_path / "result.json").read_text())
    assert result["task"] == "finance-sentiment" and result["flops_per_step"] > 0 and result["peak_flops"] > 0
    assert result["ratio"] == pytest.approx(result["crossfuse_s_per_step"] / result["plain_s_per_step"])


@pytest.mark.slow
def test_gpu_smoke_runs_every_section_on_the_cpu(tmp_path):
    out = run_script("gpu.py", "--smoke", "--out", str(tmp_path / "gpu.json"))
    assert len(RATIO.findall(out)) == 2  # BERT and ResNet, each measured side by side
    assert "| section | model |" in out and "| bert-eager | bert-tiny |" in out and "| resnet50-eager | resnet18 |" in out
    assert re.search(r"^DDP check .* -> within the tolerance", out, re.MULTILINE)  # 2 gloo ranks = 1 process
    document = json.loads((tmp_path / "gpu.json").read_text())
    assert {name: s["status"] for name, s in document["sections"].items()} == \
        {"bert-eager": "ok", "resnet50-eager": "ok", "ddp": "ok"}


@pytest.mark.slow
def test_cli_startup_prints_each_command_against_python_and_torch():
    out = run_script("cli_startup.py", "--repeat", "1")
    assert re.search(r"x python +x import torch", out)
    for command in ("python -c pass", "crossfuse --help", "crossfuse list", "crossfuse plugins"):
        assert re.search(rf"^{re.escape(command)} +\d+\.\d{{3}} +\d+\.\d +\d+\.\d\d$", out, re.MULTILINE), command


@pytest.mark.slow
def test_serve_load_prints_both_modes_per_task_and_their_ratio(tmp_path):
    out = run_script("serve_load.py", "--tasks", "finance-sentiment", "--requests", "6", "--concurrency", "3",
                     "--warmup", "1", "--batch-size", "8", "--workdir", str(tmp_path), "--out", str(tmp_path / "load.json"))
    assert re.search(r"^\| finance-sentiment \| batched \| 8 \| 6 \| 6 \| \d+\.\d \|", out, re.MULTILINE)
    assert re.search(r"^\| finance-sentiment \| unbatched \| 1 \| 6 \| 6 \| \d+\.\d \|", out, re.MULTILINE)
    assert re.search(r"^ratio batched / unbatched = \d+\.\d{3} \(finance-sentiment", out, re.MULTILINE)
    batched, unbatched = json.loads((tmp_path / "load.json").read_text())
    assert unbatched["model_calls"] == 6 and batched["model_calls"] <= 6
    assert batched["p50_ms"] <= batched["p95_ms"] <= batched["p99_ms"]
