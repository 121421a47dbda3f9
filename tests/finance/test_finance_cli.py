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
                                 "--set", "data.train=/nonexistent/train.csv"),
                       "data.train: no such file or folder: /nonexistent/train.csv")


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
            "--set", "train.progress=false", "--set", "train.keep_resume_state=true"]
    assert crossfuse(*args).returncode == 0
    assert (tmp_path / "r" / "checkpoints" / "last-state.pt").is_file()
    (tmp_path / "r" / "marker").write_text("old")
    assert crossfuse(*args, "--overwrite").returncode == 0
    assert not (tmp_path / "r" / "marker").exists()
    resumed = crossfuse("run", "finance-sentiment", "--output", tmp_path / "r", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "training had already finished (step 63)" in resumed.stderr  # ceil(998 / 16)
    assert_usage_error(crossfuse("run", "finance-sentiment", "--output", tmp_path / "r", "--resume", "--epochs", "3"),
                       "--resume continues a run with its saved config")


def test_a_finished_run_drops_its_resume_state_unless_asked_to_keep_it(tmp_path):
    args = ["run", "finance-sentiment", "--backbone", "tiny-bert", "--epochs", "1", "--output", tmp_path / "r",
            "--set", "train.progress=false", "--set", "train.max_steps=2"]
    assert crossfuse(*args).returncode == 0
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == ["best.safetensors",
                                                                                "last.safetensors"]
    assert_usage_error(crossfuse("run", "finance-sentiment", "--output", tmp_path / "r", "--resume"),
                       "resume state was dropped (train.keep_resume_state=false)")


def test_resume_and_overwrite_together_are_refused(tmp_path):
    assert_usage_error(crossfuse("run", "finance-sentiment", "--output", tmp_path / "r", "--resume", "--overwrite"),
                       "choose one")


def test_explain_gives_each_token_an_attribution_toward_the_predicted_label(tiny_run, tmp_path):
    result = crossfuse("predict", tiny_run.run_dir, "Profit rose sharply", "--explain", "--explain-dir",
                       tmp_path / "why", "--json")
    assert result.returncode == 0, result.stderr
    [prediction] = json.loads(result.stdout)
    tokens = [token for token, _ in prediction["attributions"]]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) > 3
    assert any(abs(score) > 0 for _, score in prediction["attributions"])
    plain = crossfuse("predict", tiny_run.run_dir, "Profit rose sharply", "--explain", "--explain-dir",
                      tmp_path / "why2")
    assert "driven by:" in plain.stdout


def test_predict_help_lists_the_runs_task_options_and_eval_takes_device_and_batch_size(tiny_run, tmp_path):
    help_text = crossfuse("predict", tiny_run.run_dir, "--help").stdout
    assert "Options of this run's task (finance-sentiment):\n  (none)" in help_text  # --batch-size is the command's
    path = write_csv(tmp_path / "e.csv", [("Sales rose", "positive"), ("Sales fell", "negative")])
    result = crossfuse("eval", tiny_run.run_dir, "--data", path, "--device", "cpu", "--batch-size", "1", "--json")
    assert result.returncode == 0 and sum(map(sum, json.loads(result.stdout)["confusion_matrix"])) == 2


def test_demo_command_names_the_demo_files():
    result = crossfuse("demo", "finance-sentiment", "--json")
    paths = json.loads(result.stdout)
    assert set(paths) == {"train", "validation", "test"} and all(p.endswith(".csv") for p in paths.values())
