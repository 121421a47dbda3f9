"""Helpers tasks share: predict's input expansion and the regenerable-data cache."""

from __future__ import annotations

import pytest

from crossfuse.errors import DataError
from crossfuse.runs import cached_folder
from crossfuse.task import expand_inputs


def test_expand_inputs_takes_files_and_folders_in_order(tmp_path):
    (tmp_path / "frames" / "night").mkdir(parents=True)
    for name in ("b.png", "a.JPG", "notes.txt", "night/c.png"):
        (tmp_path / "frames" / name).write_bytes(b"x")
    single = tmp_path / "single.png"
    single.write_bytes(b"x")
    deep = expand_inputs([str(single), str(tmp_path / "frames")], [".png", ".jpg"])  # subfolders by default
    assert [p.relative_to(tmp_path).as_posix() for p in deep] == ["single.png", "frames/a.JPG", "frames/b.png",
                                                                  "frames/night/c.png"]
    flat = expand_inputs([str(tmp_path / "frames")], ["png"], recursive=False)  # the dot is optional
    assert [p.name for p in flat] == ["b.png"]
    with pytest.raises(DataError, match="nothing.png: no such file or folder"):
        expand_inputs([str(tmp_path / "nothing.png")], [".png"])
    with pytest.raises(DataError, match="no .wav files in this folder or its subfolders"):
        expand_inputs([str(tmp_path / "frames")], [".wav"])


def test_cached_folder_fills_once_and_never_keeps_a_half_written_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSFUSE_CACHE", str(tmp_path / "cache"))
    calls = []

    def broken(folder):
        (folder / "part.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached_folder("demo", "v1", fill=broken)
    assert not (tmp_path / "cache" / "demo" / "v1").exists()
    assert list((tmp_path / "cache" / "demo").iterdir()) == []  # no temporary left behind

    def fill(folder):
        calls.append(folder)
        (folder / "data.txt").write_text("whole")

    first = cached_folder("demo", "v1", fill=fill)
    again = cached_folder("demo", "v1", fill=fill)
    assert first == again == tmp_path / "cache" / "demo" / "v1"
    assert (first / "data.txt").read_text() == "whole" and len(calls) == 1
