"""`crossfuse runs` and `crossfuse compare`: what was run, read from the run directories' files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from cli_runner import assert_usage_error, crossfuse


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny finance runs under one root that differ in train.lr only."""
    from crossfuse.testing import smoke_fit

    root = tmp_path_factory.mktemp("runs")
    common = ["train.batch_size=64", "train.tensorboard=false"]
    first = smoke_fit("finance-sentiment", root / "finance-sentiment" / "lr-high", overrides=[*common, "train.lr=1e-3"])
    second = smoke_fit("finance-sentiment", root / "finance-sentiment" / "lr-low", overrides=[*common, "train.lr=1e-4"])
    return root, first, second


def fake_run(folder, task, *, report=None, state=False):
    """A run directory written by hand: config.yaml, optionally report.json and a resume state."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"task": task, "seed": 1, "backbone": {"name": "x"},
                                                        "train": {"epochs": 4, "lr": 0.1}}))
    if report is not None:
        (folder / "report.json").write_text(json.dumps(report))
    if state:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last-state.pt").write_bytes(b"")
    return folder


def runs_json(*args):
    result = crossfuse("runs", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_runs_lists_every_run_newest_first_with_its_main_metric(two_runs):
    root, first, second = two_runs
    listed = runs_json("--root", root)
    assert [row["run_dir"] for row in listed] == [str(second.run_dir), str(first.run_dir)]
    row = listed[1]
    assert row["task"] == "finance-sentiment" and row["backbone"] == "tiny-bert" and row["status"] == "finished"
    assert row["main_metric"] == "macro_f1"
    assert row["validation"] == pytest.approx(first.report["splits"]["validation"]["macro_f1"])
    assert row["test"] == pytest.approx(first.report["splits"]["test"]["macro_f1"])
    assert row["steps"] == first.report["steps"] and row["epochs"] == 1 and row["epochs_done"] == 1
    assert row["wall_time_s"] == first.report["wall_time_s"]


def test_runs_prints_an_aligned_table(two_runs):
    root, first, _ = two_runs
    result = crossfuse("runs", "--root", root)
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["RUN", "TASK", "STARTED", "BACKBONE", "STATUS"]
    assert lines[0].index("STATUS") == lines[1].index("finished") == lines[2].index("finished")
    assert f"{first.report['splits']['test']['macro_f1']:.4f}" in result.stdout


def test_runs_filters_by_task_and_tells_status_apart(tmp_path):
    fake_run(tmp_path / "root" / "a", "finance-sentiment", report={"main_metric": "f1", "steps": 3})
    fake_run(tmp_path / "root" / "b", "finance-sentiment", state=True)
    fake_run(tmp_path / "root" / "c", "medical-imaging")
    statuses = {row["run_dir"].split(os.sep)[-1]: row["status"] for row in runs_json("--root", tmp_path / "root")}
    assert statuses == {"a": "finished", "b": "resumable", "c": "incomplete"}
    only = runs_json("medical-imaging", "--root", tmp_path / "root")
    assert [row["task"] for row in only] == ["medical-imaging"]


def test_runs_lists_a_run_whose_plugin_is_not_installed(tmp_path):
    fake_run(tmp_path / "root" / "x", "leafspot-from-a-removed-plugin",
             report={"main_metric": "accuracy", "splits": {"test": {"accuracy": 0.75}}})
    (row,) = runs_json("--root", tmp_path / "root")
    assert row["task"] == "leafspot-from-a-removed-plugin" and row["test"] == 0.75


def test_runs_skips_folders_whose_config_yaml_is_not_a_run(tmp_path):
    (tmp_path / "root" / "configs").mkdir(parents=True)
    (tmp_path / "root" / "configs" / "config.yaml").write_text("just: a file\n")
    assert runs_json("--root", tmp_path / "root") == []


def test_runs_with_a_missing_root_is_a_usage_error(tmp_path):
    assert_usage_error(crossfuse("runs", "--root", tmp_path / "nowhere"), "nowhere")


def test_compare_shows_only_the_config_keys_that_differ(two_runs):
    _, first, second = two_runs
    result = crossfuse("compare", first.run_dir, second.run_dir, "--json")
    comparison = json.loads(result.stdout)
    keys = {row["key"]: row["values"] for row in comparison["config"]}
    assert keys.pop("train.lr") == [1e-3, 1e-4]
    # head_lr follows lr when it is not set; nothing else differs (the output folder is the column itself)
    assert set(keys) <= {"train.head_lr"}, keys


def test_compare_lines_up_the_metrics_by_name(two_runs):
    _, first, second = two_runs
    comparison = json.loads(crossfuse("compare", first.run_dir, second.run_dir, "--json").stdout)
    metrics = {row["name"]: row["values"] for row in comparison["metrics"]}
    assert metrics["test.macro_f1"] == [pytest.approx(first.report["splits"]["test"]["macro_f1"]),
                                        pytest.approx(second.report["splits"]["test"]["macro_f1"])]
    assert metrics["steps"] == [first.report["steps"], second.report["steps"]]
    assert metrics["best_epoch"] == [0, 0]
    size = sum(p.stat().st_size for p in (first.run_dir / "checkpoints").iterdir())
    assert metrics["checkpoints_bytes"][0] == size > 0
    assert "baseline.test.macro_f1" in metrics and comparison["same_task"] is True


def test_compare_prints_an_aligned_table(two_runs):
    _, first, second = two_runs
    result = crossfuse("compare", first.run_dir, second.run_dir)
    assert result.returncode == 0, result.stderr
    lr_line = next(line for line in result.stdout.splitlines() if line.startswith("train.lr "))
    assert lr_line.split() == ["train.lr", "0.0010", "0.0001"]
    f1_line = next(line for line in result.stdout.splitlines() if line.startswith("test.macro_f1 "))
    header = next(line for line in result.stdout.splitlines() if line.startswith("METRIC"))
    assert header.index("run 2") == f1_line.index(f"{second.report['splits']['test']['macro_f1']:.4f}")


def test_compare_says_when_the_tasks_differ(two_runs, tmp_path):
    _, first, _ = two_runs
    other = fake_run(tmp_path / "other", "medical-imaging", report={"splits": {"test": {"accuracy": 0.5}}})
    result = crossfuse("compare", first.run_dir, other)
    assert result.returncode == 0, result.stderr
    assert "different tasks" in result.stdout and "by name only" in result.stdout
    accuracy = next(line for line in result.stdout.splitlines() if line.startswith("test.accuracy "))
    assert accuracy.split()[-1] == "0.5000"


def test_compare_names_a_path_that_is_not_a_run(two_runs, tmp_path):
    _, first, _ = two_runs
    (tmp_path / "plain").mkdir()
    assert_usage_error(crossfuse("compare", first.run_dir, tmp_path / "plain"), str(tmp_path / "plain"),
                       "not a crossfuse run directory")


def test_compare_needs_two_runs(two_runs):
    _, first, _ = two_runs
    assert crossfuse("compare", first.run_dir).returncode == 2


def test_runs_and_compare_import_no_torch_and_no_tracker(two_runs):
    root, first, second = two_runs
    code = ("import sys\nfrom crossfuse.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'tensorboard', 'mlflow', 'sklearn') if m in sys.modules], file=sys.stderr)\n")
    for args in (["runs", "--root", str(root)], ["compare", str(first.run_dir), str(second.run_dir)]):
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr


def test_a_run_copied_without_its_checkpoints_still_compares(two_runs, tmp_path):
    _, first, second = two_runs
    copy = shutil.copytree(first.run_dir, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoints", "backbone"))
    comparison = json.loads(crossfuse("compare", copy, second.run_dir, "--json").stdout)
    sizes = next(row["values"] for row in comparison["metrics"] if row["name"] == "checkpoints_bytes")
    assert sizes[0] == 0 and sizes[1] > 0
