"""Distillation end to end: a tiny finance teacher run teaches a smaller student with another tokenizer."""

from __future__ import annotations

import pytest

from crossfuse.errors import ConfigError
from crossfuse.testing import smoke_fit, write_tiny_text_backbone

from cli_runner import assert_usage_error, crossfuse

STUDENT = ["train.batch_size=32", "train.lr=1e-3", "distill.alpha=0.7", "distill.temperature=3"]


@pytest.fixture(scope="module")
def small_backbone(tmp_path_factory):
    """A 16-wide BERT with its own vocabulary: the teacher's token ids mean nothing to it."""
    return write_tiny_text_backbone(tmp_path_factory.mktemp("small") / "bert16", hidden=16)


@pytest.fixture(scope="module")
def student(tiny_run, small_backbone, tmp_path_factory):
    return smoke_fit("finance-sentiment", tmp_path_factory.mktemp("student") / "run", backbone=str(small_backbone),
                     overrides=STUDENT, distill_from=str(tiny_run.run_dir))


def test_the_report_puts_teacher_and_student_side_by_side(student, tiny_run):
    side = student.report["distillation"]
    assert side["teacher"]["run_dir"] == str(tiny_run.run_dir)
    assert side["teacher"]["backbone"] == "tiny-bert"
    assert side["student"]["parameters"] < side["teacher"]["parameters"]
    assert side["size_ratio"] == pytest.approx(side["student"]["parameters"] / side["teacher"]["parameters"], abs=1e-3)
    for row in (side["student"], side["teacher"]):
        assert row["samples_per_s"] > 0 and row["size_mb"] > 0
        assert set(row["splits"]) == {"validation", "test"}


def test_the_teacher_column_is_the_teachers_own_metric_on_the_same_split(student, tiny_run):
    side = student.report["distillation"]
    for split in ("validation", "test"):
        assert side["teacher"]["splits"][split] == pytest.approx(tiny_run.report["splits"][split]["macro_f1"], abs=1e-9)
        assert side["student"]["splits"][split] == student.report["splits"][split]["macro_f1"]


def test_the_distilled_run_reloads_and_predicts_without_its_teacher(student, tmp_path):
    import shutil

    import crossfuse

    copy = tmp_path / "moved"
    shutil.copytree(student.run_dir, copy)
    predictions = crossfuse.load(copy).predict(["Operating profit rose to EUR 13.1 mn"])
    assert predictions[0]["label"] in ("negative", "neutral", "positive")


def test_resume_of_a_distilled_run_is_exact(student, tiny_run, small_backbone, tmp_path):
    from crossfuse.trainer import Callback

    class InterruptAt(Callback):
        def on_step_end(self, trainer, state):
            if state.step == 4:
                raise KeyboardInterrupt

    output = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        smoke_fit("finance-sentiment", output, backbone=str(small_backbone), overrides=STUDENT,
                  distill_from=str(tiny_run.run_dir), callbacks=[InterruptAt()])
    import crossfuse

    resumed = crossfuse.run("finance-sentiment", output=str(output), resume=True, progress=False)
    for split in ("validation", "test"):
        assert resumed.report["splits"][split]["macro_f1"] == pytest.approx(
            student.report["splits"][split]["macro_f1"], abs=1e-9)


def test_a_teacher_with_other_labels_is_refused_naming_both(tiny_run, small_backbone, tmp_path):
    with pytest.raises(ConfigError, match=r"its labels \['negative', 'neutral', 'positive'\] differ"):
        smoke_fit("finance-sentiment", tmp_path / "run", backbone=str(small_backbone),
                  overrides=["data.labels=[negative,neutral,positive,mixed]"], distill_from=str(tiny_run.run_dir))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_the_cli_takes_distill_from_and_a_teacher_of_another_task_exits_2(tiny_run, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.yaml").write_text("task: medical-imaging\n", encoding="utf-8")
    result = crossfuse("run", "finance-sentiment", "--distill-from", tmp_path / "other", "--output", tmp_path / "run")
    assert_usage_error(result, "a run of 'medical-imaging'; the teacher must be a run of the same task")
    assert not (tmp_path / "run").exists()
