"""crossfuse.testing helpers for plugin authors: tiny data makers, the CLI in-process, heavy imports."""

from __future__ import annotations

import csv
import hashlib

import pytest

from crossfuse.testing import INPUT_COLUMNS, heavy_imports, make_audio_clips, make_dataset, make_images, make_text_rows, run_cli

from plugin_dists import install_fake_plugin


def rows(manifest):
    with open(manifest, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_text_rows_are_a_csv_with_each_labels_cue_words(tmp_path):
    manifest = make_text_rows(tmp_path, labels=["refund", "delivery"], per_label=5)
    table = rows(manifest)
    assert [r["label"] for r in table] == ["refund"] * 5 + ["delivery"] * 5
    assert all(r["label"] in r["text"] for r in table)


@pytest.mark.parametrize("maker, suffix", [(make_images, ".png"), (make_audio_clips, ".wav")])
def test_files_are_written_by_label_with_a_manifest_relative_to_them(tmp_path, maker, suffix):
    manifest = maker(tmp_path, labels=["a", "b"], per_label=3)
    table = rows(manifest)
    column = list(table[0])[0]
    assert [r["label"] for r in table] == ["a"] * 3 + ["b"] * 3
    assert all((tmp_path / r[column]).is_file() and r[column].startswith(r["label"] + "/") for r in table)
    assert {p.suffix for p in tmp_path.rglob("*") if p.is_file() and p != manifest} == {suffix}


def test_the_files_load_with_the_core_readers(tmp_path):
    from crossfuse.media import load_audio, load_image

    make_images(tmp_path / "img", labels=["a"], per_label=1, size=20)
    make_audio_clips(tmp_path / "wav", labels=["a"], per_label=1, sample_rate=8000, seconds=0.25)
    assert load_image(tmp_path / "img" / "a" / "a_000.png").size == (20, 20)
    waveform, rate = load_audio(tmp_path / "wav" / "a" / "a_000.wav")
    assert rate == 8000 and 0.15 * 8000 < len(waveform) <= 0.25 * 8000


def test_makers_are_deterministic_for_a_seed(tmp_path):
    digests = []
    for attempt in ("one", "two"):
        make_images(tmp_path / attempt, labels=["a"], per_label=1, seed=3)
        digests.append(hashlib.sha256((tmp_path / attempt / "a" / "a_000.png").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_make_dataset_picks_the_maker_by_modality(tmp_path, modality):
    manifest = make_dataset(modality, tmp_path, labels=["x", "y"], per_label=2)
    assert list(rows(manifest)[0]) == [INPUT_COLUMNS[modality], "label"]
    with pytest.raises(ValueError, match="no data maker for modality 'video'"):
        make_dataset("video", tmp_path)


def test_run_cli_captures_output_and_exit_code_and_restores_the_folder(tmp_path):
    import os

    before = os.getcwd()
    listed = run_cli("list", "tasks", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and "finance-sentiment" in listed.stdout
    unknown = run_cli("run", "no-such-task")
    assert unknown.returncode == 2 and "unknown task 'no-such-task'" in unknown.stderr
    assert os.getcwd() == before


def test_heavy_imports_names_what_a_plugin_pulls_in_while_registering(tmp_path, monkeypatch):
    site = install_fake_plugin(tmp_path / "site", "greedy_plugin", "import numpy\nfrom crossfuse import hookimpl\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    assert heavy_imports("greedy_plugin") == ["numpy"]
    assert heavy_imports("crossfuse_finance") == []
