"""Keyword-spotting metrics against values worked out by hand, the registered metric, and the pictures."""

from __future__ import annotations

import numpy as np
import pytest

from crossfuse_smarthome.metrics import accuracy_per_voice, voice_metrics
from crossfuse_smarthome.report import draw_report
from crossfuse_smarthome.speech_commands import VoiceClip

LABELS = ["_silence_", "_unknown_", "on"]
TRUTH = [0, 0, 1, 1, 2, 2]
PREDICTED = [0, 1, 1, 1, 2, 0]
VOICES = ["a", "a", "b", "b", None, "a"]


def one_hot(predicted, classes=3):
    return np.eye(classes)[predicted] * 0.7 + 0.1  # rows sum to 1


def test_accuracy_f1_precision_recall_and_confusion_match_hand_counts():
    metrics = voice_metrics(TRUTH, one_hot(PREDICTED), LABELS)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # precision: 1 of 2 said silence, 2 of 3 said unknown, 1 of 1 said on; recall: 1/2, 2/2, 1/2
    per_class = metrics["per_class"]
    assert [per_class[k]["precision"] for k in LABELS] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert [per_class[k]["recall"] for k in LABELS] == pytest.approx([1 / 2, 1.0, 1 / 2])
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert "accuracy_per_voice" not in metrics and metrics["labels"] == LABELS


def test_accuracy_per_voice_skips_clips_without_a_voice():
    metrics = voice_metrics(TRUTH, one_hot(PREDICTED), LABELS, speakers=VOICES)
    assert metrics["accuracy_per_voice"] == {"a": {"accuracy": pytest.approx(1 / 3), "clips": 3},
                                             "b": {"accuracy": 1.0, "clips": 2}}
    assert metrics["worst_voice_accuracy"] == pytest.approx(1 / 3)


def test_the_registered_metric_reads_each_sample_s_speaker():
    samples = [VoiceClip(f"{i}.wav", LABELS[t], "w", voice) for i, (t, voice) in enumerate(zip(TRUTH, VOICES))]
    assert accuracy_per_voice(one_hot(PREDICTED), TRUTH, samples) == voice_metrics(
        TRUTH, one_hot(PREDICTED), LABELS, VOICES)["accuracy_per_voice"]


def test_the_report_draws_the_confusion_matrices_and_the_accuracy_per_voice(tmp_path):
    metrics = voice_metrics(TRUTH, one_hot(PREDICTED), LABELS, VOICES)
    report = {"task": "smarthome-voice-commands", "backbone": "bc-resnet-1",
              "splits": {"validation": metrics, "test": metrics}}
    written = ["confusion_matrix_validation.png", "confusion_matrix_test.png", "accuracy_per_voice.png"]
    assert draw_report(report, tmp_path) == written
    for name in written:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert draw_report({**report, "splits": {"test": {"accuracy": 1.0}}}, tmp_path / "none") == []
