"""finance-sentiment end to end on a tiny backbone: data, run directory, report, reload, Chinese."""

from __future__ import annotations

import csv
import importlib.resources
import json
from collections import Counter

import pytest
import torch

import crossfuse
from crossfuse.errors import DataError
from crossfuse.testing import smoke_fit, write_tiny_text_backbone

from finance_files import write_csv


def demo_split(name):
    root = importlib.resources.files("crossfuse_finance") / "demo_data"
    with (root / f"{name}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_demo_data_is_large_balanced_and_without_leaks():
    splits = {name: demo_split(name) for name in ("train", "validation", "test")}
    assert [len(rows) for rows in splits.values()] == [998, 111, 111]
    for rows in splits.values():
        counts = Counter(row["label"] for row in rows)
        assert set(counts) == {"negative", "neutral", "positive"} and min(counts.values()) >= 0.25 * len(rows)
    texts = [row["text"] for rows in splits.values() for row in rows]
    assert len(texts) == len(set(texts))


def test_run_directory_holds_config_log_checkpoint_report_and_picture(tiny_run):
    run_dir = tiny_run.run_dir
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/best.safetensors", "report.json", "backbone/config.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    report = json.loads((run_dir / "report.json").read_text())
    for split in ("validation", "test"):
        metrics = report["splits"][split]
        assert set(metrics["per_class"]) == {"negative", "neutral", "positive"}
        assert sum(map(sum, metrics["confusion_matrix"])) == 111
        assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert report["baseline"]["name"] == "tfidf-logreg"
    assert report["baseline"]["splits"]["test"]["macro_f1"] > 0.45  # the demo is learnable, not trivial
    assert report["pictures"] == ["confusion_matrix.png", "reliability_validation.png", "reliability_test.png"]


def test_loaded_run_predicts_labels_with_probabilities(tiny_run):
    predictions = crossfuse.load(tiny_run.run_dir).predict(["Profit rose", "Net loss widened"])
    assert len(predictions) == 2
    for prediction in predictions:
        assert prediction["label"] in ("negative", "neutral", "positive")
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)


def test_loaded_run_reproduces_the_reported_test_metrics(tiny_run, tmp_path):
    rows = [(row["text"], row["label"]) for row in demo_split("test")]
    metrics = crossfuse.evaluate(tiny_run.run_dir, data=write_csv(tmp_path / "test.csv", rows))
    assert metrics["confusion_matrix"] == tiny_run.report["splits"]["test"]["confusion_matrix"]


def test_evaluate_reads_phrasebank_and_renamed_columns(tiny_run, tmp_path):
    phrasebank = tmp_path / "Sentences_AllAgree.txt"
    phrasebank.write_text("Sales rose 9%@positive\nThe lender cut 300 jobs@negative\nThe AGM is in May@neutral\n",
                          encoding="latin-1")
    assert sum(map(sum, crossfuse.evaluate(tiny_run.run_dir, data=phrasebank)["confusion_matrix"])) == 3
    renamed = write_csv(tmp_path / "n.csv", [("Orders fell", "negative")], header=("headline", "tone"))
    metrics = crossfuse.evaluate(tiny_run.run_dir, data=renamed,
                                 overrides=["data.text_column=headline", "data.label_column=tone"])
    assert sum(map(sum, metrics["confusion_matrix"])) == 1


def test_unknown_label_names_file_line_and_choices_and_writes_nothing(tmp_path):
    path = write_csv(tmp_path / "train.csv", [("Profit rose", "positive"), ("Shares fell", "bearish")])
    with pytest.raises(DataError, match=r"train.csv, line 3: unknown label 'bearish'; expected one of negative, neutral"):
        smoke_fit("finance-sentiment", tmp_path / "out", overrides=["data.format=csv", f"data.train={path}"])
    assert not (tmp_path / "out").exists()


def test_only_a_train_file_is_split_stratified(tmp_path):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    rows = [(f"{w} sales rose", "positive") for w in words] * 2 + [(f"{w} sales fell", "negative") for w in words] * 2 \
        + [(f"{w} meeting on monday", "neutral") for w in words] * 2
    path = write_csv(tmp_path / "train.csv", rows)
    result = smoke_fit("finance-sentiment", tmp_path / "out", overrides=["data.format=csv", f"data.train={path}"])
    assert result.report["sizes"] == {"train": 48, "validation": 6, "test": 6}
    assert all(sum(row) == 2 for row in result.report["splits"]["test"]["confusion_matrix"])  # 2 of each label


CHINESE = [("公司利润大幅增长", "positive"), ("季度营收创历史新高", "positive"), ("订单量同比上升", "positive"),
           ("公司净亏损扩大", "negative"), ("股价暴跌百分之十", "negative"), ("公司宣布裁员五百人", "negative"),
           ("公司将于三月召开股东大会", "neutral"), ("董事会任命新的财务总监", "neutral"), ("公司发布年度报告日期", "neutral")]


def test_chinese_text_trains_and_predicts_with_a_chinese_vocabulary(tmp_path):
    backbone = write_tiny_text_backbone(tmp_path / "zh-bert", texts=[text for text, _ in CHINESE])
    train = write_csv(tmp_path / "train.csv", CHINESE * 4)
    validation = write_csv(tmp_path / "validation.csv", CHINESE)
    result = smoke_fit("finance-sentiment", tmp_path / "run", backbone=str(backbone),
                       overrides=["data.format=csv", f"data.train={train}", f"data.validation={validation}",
                                  "data.test_fraction=0"])
    model = crossfuse.load(result.run_dir)
    ids = model.task.tokenize(["公司利润大幅增长"])["input_ids"][0]
    assert not torch.any(ids == model.model.backbone.tokenizer.unk_token_id)
    assert model.predict(["公司净亏损扩大"])[0]["label"] in ("negative", "neutral", "positive")


def test_same_seed_gives_the_same_report_and_resume_equals_an_uninterrupted_run(tmp_path):
    from crossfuse.trainer import Callback

    class InterruptAt(Callback):
        def on_step_end(self, trainer, state):
            if state.step == 40:  # mid-way through the second epoch (32 steps an epoch)
                raise KeyboardInterrupt

    args = dict(epochs=2, overrides=["train.batch_size=32", "train.lr=1e-3"])
    first = smoke_fit("finance-sentiment", tmp_path / "a", **args)
    second = smoke_fit("finance-sentiment", tmp_path / "b", **args)
    assert first.report["splits"] == second.report["splits"]

    with pytest.raises(KeyboardInterrupt):
        smoke_fit("finance-sentiment", tmp_path / "c", callbacks=[InterruptAt()], **args)
    resumed = crossfuse.run("finance-sentiment", output=str(tmp_path / "c"), resume=True, progress=False)
    assert resumed.report["splits"] == first.report["splits"]
    assert resumed.report["steps"] == first.report["steps"] == 64


def test_a_single_label_training_set_is_refused_before_anything_is_written(tmp_path):
    path = write_csv(tmp_path / "train.csv", [(f"Sales rose {i}%", "positive") for i in range(20)])
    with pytest.raises(DataError, match="single label"):
        smoke_fit("finance-sentiment", tmp_path / "out", overrides=["data.format=csv", f"data.train={path}"])
    assert not (tmp_path / "out").exists()


def test_tiny_datasets_are_split_without_stratification(tmp_path):
    rows = [("Sales rose", "positive"), ("Sales fell", "negative"), ("AGM in May", "neutral")] * 4
    result = smoke_fit("finance-sentiment", tmp_path / "out",
                       overrides=["data.format=csv", f"data.train={write_csv(tmp_path / 't.csv', rows)}"])
    assert sum(result.report["sizes"].values()) == 12


@pytest.mark.slow
def test_a_bf16_run_evaluates_afterwards_to_the_numbers_of_its_report(tmp_path):
    from crossfuse.api import demo_paths

    run = smoke_fit("finance-sentiment", tmp_path / "run",
                    overrides=["train.batch_size=32", "train.lr=1e-3", "train.precision=bf16"])
    predictor = crossfuse.load(run.run_dir)
    assert predictor.amp_dtype == torch.bfloat16  # eval and predict run as training and calibration did
    metrics = predictor.evaluate(demo_paths("finance-sentiment")["test"])
    report = run.report["splits"]["test"]
    for key in ("macro_f1", "accuracy", "macro_roc_auc"):
        assert metrics[key] == pytest.approx(report[key], abs=1e-9), key


def test_the_temperature_is_fitted_on_validation_saved_and_applied_by_predict(tiny_run):
    state = json.loads((tiny_run.run_dir / "task_state.json").read_text())
    temperature = state["temperature"]
    test = tiny_run.report["splits"]["test"]
    assert test["temperature"] == temperature and temperature != 1.0
    assert set(test["calibration"]["curves"]) == {"before scaling", f"after (T={temperature:.2f})"}
    # Scaling never changes a prediction: the confusion matrix is that of the raw logits.
    predictor = crossfuse.load(tiny_run.run_dir)
    texts = ["Operating profit rose to EUR 13.1 mn", "The company cut 300 jobs"]
    predictions = predictor.predict(texts)
    with torch.no_grad():
        logits = predictor.model(**predictor.task.tokenize(texts)).float()
    expected = (logits / temperature).softmax(-1)
    for prediction, row in zip(predictions, expected):
        assert list(prediction["probabilities"].values()) == pytest.approx(row.tolist(), abs=1e-4)
