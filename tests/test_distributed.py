"""DDP under torchrun: two CPU processes on gloo train one run and evaluate every sample once."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

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
    # Each rank sees half of the 998 training samples: ceil(499 / 16) = 32 optimizer steps.
    assert report["steps"] == 32
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


# -- equivalence, seeds, FSDP and the NaN guard on the toy task (tests/ddp_toy.py) --------------

TESTS = Path(__file__).parent


def toy_run(out: Path, nproc: int, **options) -> dict:
    """Train the toy task in ``nproc`` processes under torchrun; rank 0's result.json."""
    out.mkdir(parents=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(TESTS / "ddp_toy.py"), str(out), json.dumps(options)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "result.json").read_text())


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in a)


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The same global batch of 16: one process, and two processes of 8 (dropout off, so the runs
    differ only by how the gradient is summed)."""
    root = tmp_path_factory.mktemp("toy")
    return (toy_run(root / "one", 1, batch_size=16, dropout=False),
            toy_run(root / "two", 2, batch_size=8, dropout=False))


def test_two_processes_train_what_one_does_with_the_same_global_batch(one_and_two):
    one, two = one_and_two
    assert two["world_size"] == 2 and one["step"] == two["step"] == 18
    # Stated tolerance: float32 sums in another order, 1e-6 on every weight after 18 AdamW steps.
    assert max_difference(one["weights_per_rank"][0], two["weights_per_rank"][0]) < 1e-6
    assert max_difference(*two["weights_per_rank"]) == 0.0  # DDP keeps the ranks identical
    for a, b in zip(one["history"], two["history"]):
        assert a["accuracy"] == b["accuracy"] and a["loss"] == pytest.approx(b["loss"], abs=1e-6)


def test_each_rank_draws_its_own_random_numbers_and_rank_zero_those_of_one_process(one_and_two):
    one, two = one_and_two
    rank0, rank1 = two["draws"]
    assert rank0 == one["draws"][0]
    assert rank0 != rank1  # dropout masks and augmentations differ between ranks


def test_fsdp_shards_the_model_and_trains_what_ddp_does(one_and_two, tmp_path):
    fsdp = toy_run(tmp_path / "fsdp", 2, batch_size=8, dropout=False, strategy="fsdp")
    assert max_difference(fsdp["weights_per_rank"][0], one_and_two[1]["weights_per_rank"][0]) < 1e-6
    assert fsdp["history"][-1]["accuracy"] == one_and_two[1]["history"][-1]["accuracy"]


def test_a_nan_loss_on_one_rank_stops_every_rank_naming_the_step(tmp_path):
    result = toy_run(tmp_path / "stop", 2, batch_size=8, nan_at=[1, 3])
    assert "loss became NaN or infinite on rank 1 at optimizer step 3 (epoch 1, batch 3)" in result["error"]


def test_a_nan_loss_on_one_rank_is_skipped_on_every_rank(tmp_path):
    result = toy_run(tmp_path / "skip", 2, batch_size=8, nan_at=[1, 3], nonfinite="skip")
    assert result["skipped"] == 1 and result["step"] == 17
    first, second = result["weights_per_rank"]
    assert max_difference(first, second) == 0.0 and np.isfinite(np.concatenate(
        [np.ravel(v) for v in first.values()])).all()


# -- kill and resume through the CLI ---------------------------------------------------------

KILL_RUN = ["run", "finance-sentiment", "--backbone", "tiny-bert", "--epochs", "3", "--device", "cpu",
            "--set", "train.progress=false", "--set", "train.batch_size=16", "--set", "train.checkpoint_every=2",
            "--set", "train.log_every=1", "--set", "train.early_stopping_patience=null"]


def cli(run_dir: Path, nproc: int, resume: bool = False) -> list[str]:
    # A resume takes the run's saved config: only the task, the run directory and the processes.
    arguments = ["run", "finance-sentiment", "--resume"] if resume else KILL_RUN
    command = [sys.executable, "-m", "crossfuse.cli", *arguments, "--output", str(run_dir)]
    return command + (["--nproc", str(nproc)] if nproc > 1 else [])


def cli_env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def finished(run_dir: Path, nproc: int, resume: bool = False) -> dict:
    result = subprocess.run(cli(run_dir, nproc, resume), capture_output=True, text=True, timeout=300, env=cli_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "report.json").read_text())


def signal_all(pid: int, sig: int) -> None:
    """What a terminal's Ctrl-C does (``sig`` to the process group), and for SIGKILL also to every
    descendant: torchrun starts its workers in sessions of their own."""
    import psutil

    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    os.killpg(pid, sig)
    if sig == signal.SIGKILL:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)


def start_and_signal(run_dir: Path, nproc: int, sig: int, after_step: int) -> subprocess.CompletedProcess:
    """Start a run in its own process group and send ``sig`` to all of it once ``after_step`` is logged."""
    process = subprocess.Popen(cli(run_dir, nproc), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env(), start_new_session=True)
    log, deadline = run_dir / "metrics.jsonl", time.time() + 240
    while time.time() < deadline and process.poll() is None:
        steps = [json.loads(line).get("step", 0) for line in log.read_text().splitlines()] if log.is_file() else []
        if steps and max(steps) >= after_step:
            signal_all(process.pid, sig)
            break
        time.sleep(0.02)
    stdout, stderr = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def same_metrics(a: dict, b: dict) -> None:
    for split in ("validation", "test"):
        for key in ("macro_f1", "accuracy", "weighted_f1"):
            assert a["splits"][split][key] == pytest.approx(b["splits"][split][key], abs=1e-9), (split, key)
    assert a["steps"] == b["steps"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    return {nproc: finished(root / str(nproc), nproc) for nproc in (1, 2)}


@pytest.mark.parametrize("nproc", [1, 2])
def test_sigkill_mid_epoch_then_resume_reaches_the_uninterrupted_metrics(tmp_path, uninterrupted, nproc):
    run_dir = tmp_path / "run"
    killed = start_and_signal(run_dir, nproc, signal.SIGKILL, after_step=9)
    assert killed.returncode != 0 and not (run_dir / "report.json").exists()  # killed mid-run, in epoch 1
    same_metrics(finished(run_dir, nproc, resume=True), uninterrupted[nproc])


def test_ctrl_c_under_two_processes_saves_a_checkpoint_and_the_resume_is_exact(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    stopped = start_and_signal(run_dir, 2, signal.SIGINT, after_step=9)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert stopped.stderr.count("continue with `crossfuse run finance-sentiment") == 1  # rank 0 says it once
    state = torch.load(run_dir / "checkpoints" / "last-state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["trainer"]["step"] >= 10
    same_metrics(finished(run_dir, 2, resume=True), uninterrupted[2])
