"""The dataset registry at work: data.format resolved by the core, auto detection, clear refusals."""

from __future__ import annotations

import pytest

import crossfuse
from crossfuse import hookimpl
from crossfuse.datasets import Splits, check_format, listing, resolve_format
from crossfuse.errors import ConfigError, DataError
from crossfuse.plugins import get_plugin_manager
from crossfuse.runs import RunDir

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli


def is_bundle_folder(path):
    return path.is_dir() and (path / "bundle.txt").is_file()


def read_bundle(path, options):
    """A folder holding its own splits: train.txt, validation.txt, test.txt of ``text@label`` lines."""
    from crossfuse_finance.data import read_phrasebank

    return Splits(*(read_phrasebank(path / f"{name}.txt", options) for name in ("train", "validation", "test")))


class BundlePlugin:
    @hookimpl
    def register_datasets(self, register):
        register("bundle", read_bundle, tasks=["finance-sentiment"], detect=f"{__name__}:is_bundle_folder",
                 layout="a folder with bundle.txt", description="train/validation/test text files in one folder")
        register("txt-too", read_bundle, tasks=["finance-sentiment"], extensions=[".txt"],
                 description="a second reader of .txt files, to make auto ambiguous")


def write_bundle(folder, rows):
    folder.mkdir()
    (folder / "bundle.txt").write_text("")
    for name in ("train", "validation", "test"):
        (folder / f"{name}.txt").write_text("".join(f"{text}@{label}\n" for text, label in rows), encoding="latin-1")
    return folder


ROWS = [("Profit rose", "positive"), ("Loss widened", "negative"), ("AGM on Monday", "neutral")] * 6


def test_auto_prefers_a_recognised_layout_and_reports_ambiguous_extensions(tmp_path):
    get_plugin_manager().register_plugin(BundlePlugin(), "bundle")
    assert resolve_format("finance-sentiment", write_bundle(tmp_path / "b", ROWS)).name == "bundle"
    text = tmp_path / "Sentences.txt"
    text.write_text("Profit rose@positive\n")
    with pytest.raises(DataError, match="several formats for finance-sentiment match.*phrasebank, txt-too"):
        resolve_format("finance-sentiment", text)
    assert resolve_format("finance-sentiment", text, "phrasebank").name == "phrasebank"


def test_a_source_with_its_own_splits_trains_with_data_and_evaluates_its_test_split(tmp_path):
    get_plugin_manager().register_plugin(BundlePlugin(), "bundle")
    folder = write_bundle(tmp_path / "b", ROWS)
    result = cli("run", "finance-sentiment", "--data", folder, "--backbone", "tiny-bert", "--epochs", "1",
                 "--output", tmp_path / "run", "--set", "train.progress=false")
    assert result.returncode == 0, result.stderr
    report = RunDir(tmp_path / "run").read_report()
    assert report["sizes"] == {"train": 18, "validation": 18, "test": 18}
    metrics = crossfuse.evaluate(tmp_path / "run", data=folder, split="validation")
    assert sum(map(sum, metrics["confusion_matrix"])) == 18


def test_an_unknown_format_is_named_before_any_file_is_needed():
    with pytest.raises(ConfigError, match="unknown format 'xlsx' for finance-sentiment; choose one of auto, demo, csv"):
        crossfuse.resolve_config("finance-sentiment", overrides=["data.format=xlsx"])
    assert_usage_error(cli("run", "finance-sentiment", "--set", "data.format=xlsx"), "unknown format 'xlsx'")


def test_a_format_of_another_task_is_refused_with_the_right_ones():
    with pytest.raises(ConfigError, match="'kitti' .* reads data for driving-detection, not 'finance-sentiment'"):
        check_format("finance-sentiment", "kitti")


def test_demo_with_a_data_file_is_a_contradiction(tmp_path):
    with pytest.raises(ConfigError, match="data.format=demo uses the built-in data"):
        crossfuse.resolve_config("finance-sentiment", overrides=["data.format=demo"], data=str(tmp_path / "x.csv"))


def test_listing_shows_auto_and_demo_first():
    rows = listing()
    assert [row["name"] for row in rows[:2]] == ["auto", "demo"]
    assert {"phrasebank", "kitti", "lfw-pairs"} <= {row["name"] for row in rows}


def test_missing_path_names_the_key_that_gave_it(tmp_path):
    with pytest.raises(DataError, match=f"data.train: no such file or folder: {tmp_path / 'nope.csv'}"):
        crossfuse.run("finance-sentiment", data=str(tmp_path / "nope.csv"), output=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
