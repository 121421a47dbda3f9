"""`crossfuse run/eval/predict` for finance: bad input exits 2 with a message and no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from cli_runner import assert_usage_error, crossfuse
from finance_files import write_csv

CROSSFUSE = shutil.which("crossfuse")


def test_unknown_task_suggests_the_right_one():
    assert_usage_error(crossfuse("run", "finance-sentimnet"), "Did you mean 'finance-sentiment'?")


def test_unknown_backbone_suggests_names_and_creates_nothing(tmp_path):
    assert_usage_error(crossfuse("run", "finance-sentiment", "--backbone", "tiny-bret", "--output", tmp_path / "o"),
                       "unknown backbone 'tiny-bret'", "Did you mean 'tiny-bert'")
    assert not (tmp_path / "o").exists()


def test_missing_data_file_is_named():
    assert_usage_error(crossfuse("run", "finance-sentiment", "--set", "data.format=csv",
                                 "--set", "data.train=/nonexistent/train.csv"), "'/nonexistent/train.csv' does not exist")


def test_wrong_columns_are_named(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("Profit rose", "positive")], header=("headline", "label"))
    assert_usage_error(crossfuse("run", "finance-sentiment", "--set", "data.format=csv", "--set", f"data.train={path}"),
                       "no column 'text'", "data.text_column")


def test_empty_dataset_is_refused(tmp_path):
    path = write_csv(tmp_path / "t.csv", [])
    assert_usage_error(crossfuse("run", "finance-sentiment", "--set", "data.format=csv", "--set", f"data.train={path}"),
                       "empty dataset")


def test_phrasebank_line_without_at_through_eval(tiny_run, tmp_path):
    path = tmp_path / "Sentences_AllAgree.txt"
    path.write_text("Profit rose@positive\nNo separator here\n", encoding="latin-1")
    assert_usage_error(crossfuse("eval", tiny_run.run_dir, "--data", path), "line 2", "sentence@label")


def test_output_holding_another_run_is_refused(tiny_run):
    assert_usage_error(crossfuse("run", "finance-sentiment", "--backbone", "tiny-bert", "--output", tiny_run.run_dir),
                       "already holds another run", "--resume", "--overwrite")


def test_config_errors_name_the_key():
    assert_usage_error(crossfuse("run", "finance-sentiment", "--set", "train.lrr=1"), "'train.lrr'", "'train.lr'")
    assert_usage_error(crossfuse("run", "finance-sentiment", "--set", "train.epochs=two"), "train.epochs must be int")


def test_eval_json_prints_one_document(tiny_run, tmp_path):
    path = write_csv(tmp_path / "e.csv", [("Sales rose", "positive"), ("Sales fell", "negative")])
    result = crossfuse("eval", tiny_run.run_dir, "--data", path, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert 0.0 <= metrics["macro_f1"] <= 1.0 and sum(map(sum, metrics["confusion_matrix"])) == 2


@pytest.mark.skipif(CROSSFUSE is None, reason="the crossfuse console script is not installed")
def test_console_script_predicts_json_and_plain_output(tiny_run):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([CROSSFUSE, "predict", str(tiny_run.run_dir), "Profit doubled", "Shares fell", "--json"],
                            capture_output=True, text=True, timeout=300, env=env)
    predictions = json.loads(result.stdout)
    assert [p["input"] for p in predictions] == ["Profit doubled", "Shares fell"]
    plain = subprocess.run([CROSSFUSE, "predict", str(tiny_run.run_dir), "Profit doubled"], capture_output=True,
                           text=True, timeout=300, env=env)
    label, probabilities, text = plain.stdout.rstrip("\n").split("\t")
    assert label == predictions[0]["label"] and text == "Profit doubled"
    assert json.loads(probabilities)["probabilities"] == predictions[0]["probabilities"]


def test_overwrite_replaces_a_run_and_resume_continues_one(tmp_path):
    args = ["run", "finance-sentiment", "--backbone", "tiny-bert", "--epochs", "1", "--output", tmp_path / "r",
            "--set", "train.progress=false"]
    assert crossfuse(*args).returncode == 0
    (tmp_path / "r" / "marker").write_text("old")
    assert crossfuse(*args, "--overwrite").returncode == 0
    assert not (tmp_path / "r" / "marker").exists()
    resumed = crossfuse("run", "finance-sentiment", "--output", tmp_path / "r", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "training had already finished (step 33)" in resumed.stderr
    assert_usage_error(crossfuse("run", "finance-sentiment", "--output", tmp_path / "r", "--resume", "--epochs", "3"),
                       "--resume continues a run with its saved config")
