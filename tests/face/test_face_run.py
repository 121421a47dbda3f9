"""security-face-match end to end: a short CPU run, eval, 1:1 and 1:N predict, explanations, task state,
and bad input through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cli_runner import assert_usage_error, crossfuse
from face_files import write_lines, write_people


def _demo_test_folder(run) -> Path:
    return Path(json.loads((run.run_dir / "report.json").read_text())["splits"]["test"]["hardest_false_matches"][0]
                ["a"]).parent.parent


def test_short_run_reports_the_fields_metrics_and_a_calibrated_threshold(tiny_face_run):
    report = tiny_face_run.report
    for split in ("validation", "test"):
        metrics = report["splits"][split]
        for key in ("accuracy", "roc_auc", "eer", "tar@far=0.01", "tar@far=0.001", "identification_rank1"):
            assert 0.0 <= metrics[key] <= 1.0, key
        assert metrics["operating_point"]["target_far"] == 0.01
        assert metrics["operating_point"]["far"] <= 0.01
    assert report["splits"]["test"]["n_pairs"] == 16  # 2 folds x 4 matched + 4 mismatched
    assert len(report["splits"]["test"]["accuracy_per_fold"]) == 2
    # Evaluation splits count distinct images, each embedded once: 2 held-out people x 4 faces.
    assert report["sizes"]["validation"] == report["splits"]["validation"]["n_images"] == 8
    assert report["splits"]["validation"]["n_pairs"] == 20
    baseline = report["baseline"]
    assert baseline["name"] == "raw-pixel cosine" and 0.0 <= baseline["splits"]["test"]["accuracy"] <= 1.0
    for picture in ("roc_validation.png", "roc_test.png", "hardest_false_matches_test.png"):
        assert (tiny_face_run.run_dir / picture).is_file()


def test_one_to_one_prints_similarity_and_decision_at_the_saved_threshold(tiny_face_run):
    test = _demo_test_folder(tiny_face_run)
    person = sorted(p for p in test.iterdir() if p.is_dir())[0]
    a, b = sorted(person.iterdir())[:2]
    result = crossfuse("predict", tiny_face_run.run_dir, a, b, "--json")
    assert result.returncode == 0, result.stderr
    [match] = json.loads(result.stdout)
    saved = tiny_face_run.report["splits"]["validation"]["operating_point"]
    assert match["input"] == [str(a), str(b)] and -1.0 <= match["similarity"] <= 1.0
    assert match["threshold"] == saved["threshold"] and match["calibrated_far"] == 0.01
    assert match["same"] == (match["similarity"] >= saved["threshold"])
    plain = crossfuse("predict", tiny_face_run.run_dir, a, a)
    assert "\tsame\tsimilarity 1.0000" in plain.stdout and "(calibrated at FAR 0.01)" in plain.stdout
    forced = json.loads(crossfuse("predict", tiny_face_run.run_dir, a, b, "--threshold", "1.5", "--json").stdout)
    assert forced[0]["same"] is False and forced[0]["source"] == "--threshold"
    assert_usage_error(crossfuse("predict", tiny_face_run.run_dir, a), "takes images in pairs", "--gallery")


def test_gallery_search_stores_embeddings_not_images(tiny_face_run, tmp_path):
    test = _demo_test_folder(tiny_face_run)
    gallery = tmp_path / "gallery"
    probes = []
    for person in sorted(p for p in test.iterdir() if p.is_dir()):
        first, *rest = sorted(person.iterdir())
        (gallery / person.name).mkdir(parents=True)
        (gallery / person.name / first.name).write_bytes(first.read_bytes())
        probes += rest[:1]
    result = crossfuse("predict", tiny_face_run.run_dir, "--gallery", gallery, "--top-k", "3", "--output",
                       tmp_path / "enrolled", *probes, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [f["input"] for f in found] == [str(p) for p in probes]
    people = {p.name for p in gallery.iterdir()}
    for item in found:
        assert len(item["matches"]) == 3 and {m["identity"] for m in item["matches"]} <= people
        assert item["matches"][0]["similarity"] >= item["matches"][-1]["similarity"]
        assert item["label"] in people | {"unknown"}
    [saved] = list((tmp_path / "enrolled").iterdir())
    assert saved.name == "gallery.gallery.safetensors"
    from safetensors.numpy import load_file

    tensors = load_file(str(saved))
    assert sorted(tensors) == ["embeddings", "names"]
    assert tensors["embeddings"].shape == (len(people), 16)  # one 16-d vector per enrolled face, no pixels
    again = json.loads(crossfuse("predict", tiny_face_run.run_dir, "--gallery", saved, "--top-k", "3", *probes,
                                 "--json").stdout)
    assert [a["matches"] for a in again] == [f["matches"] for f in found]
    assert_usage_error(crossfuse("predict", tiny_face_run.run_dir, "--gallery", gallery, "--output",
                                 tmp_path / "enrolled", *probes), "exists", "never written over")


def test_eval_names_the_pairs_line_of_a_missing_person(tiny_face_run, tmp_path):
    root = write_people(tmp_path / "lfw", {"Ann_A": 2, "Ben_B": 2})
    pairs = write_lines(root / "pairs.txt", ["1", "Ann_A\t1\t2", "Ann_A\t1\tZed_Z\t1"])
    assert_usage_error(crossfuse("eval", tiny_face_run.run_dir, "--data", pairs), "pairs.txt, line 3", "Zed_Z")
    good = write_lines(root / "pairsDevTest.txt", ["2", "Ann_A\t1\t2", "Ben_B\t1\t2", "Ann_A\t1\tBen_B\t1",
                                                    "Ann_A\t2\tBen_B\t2"])
    result = crossfuse("eval", tiny_face_run.run_dir, "--data", good, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n_pairs"] == 4
    saved = tiny_face_run.report["splits"]["validation"]["operating_point"]["threshold"]
    assert metrics["at_saved_threshold"]["threshold"] == saved
    assert metrics["at_saved_threshold"]["far"] in (0.0, 0.5, 1.0)  # 2 impostor pairs
    plain = crossfuse("eval", tiny_face_run.run_dir, "--data", good).stdout
    assert "\nn_pairs: 4\n" in plain and "hardest_false_matches: (2 entries; --json prints them)" in plain


def test_unreadable_training_image_stops_the_run_before_anything_is_written(tmp_path):
    root = write_people(tmp_path / "people", {f"P{i}": 3 for i in range(8)})
    (root / "P3" / "P3_0002.jpg").write_bytes(b"\xff\xd8 broken")
    result = crossfuse("run", "security-face-match", "--backbone", "tiny-cnn", "--set", f"data.train={root}",
                       "--set", "data.validation_identities=0.25", "--output", tmp_path / "run")
    assert_usage_error(result, "P3_0002.jpg", "cannot read the image")
    assert not (tmp_path / "run").exists()


def test_people_with_one_image_cannot_form_validation_pairs(tmp_path):
    root = write_people(tmp_path / "people", {f"P{i}": 1 for i in range(8)})
    result = crossfuse("run", "security-face-match", "--backbone", "tiny-cnn", "--set", f"data.train={root}",
                       "--output", tmp_path / "run")
    assert_usage_error(result, "cannot form validation pairs", "at least two images")


def _pair_of_one_person(run) -> tuple[Path, Path]:
    person = sorted(p for p in _demo_test_folder(run).iterdir() if p.is_dir())[0]
    a, b = sorted(person.iterdir())[:2]
    return a, b


def test_eval_reads_an_lfw_folder_as_well_as_its_pairs_file(tiny_face_run):
    folder = _demo_test_folder(tiny_face_run)
    by_folder = crossfuse("eval", tiny_face_run.run_dir, "--data", folder, "--json")
    assert by_folder.returncode == 0, by_folder.stderr
    by_file = json.loads(crossfuse("eval", tiny_face_run.run_dir, "--data", folder / "pairs.txt", "--json").stdout)
    metrics = json.loads(by_folder.stdout)
    assert metrics["n_pairs"] == 16 and metrics["accuracy"] == by_file["accuracy"]
    assert metrics["accuracy"] == tiny_face_run.report["splits"]["test"]["accuracy"]
    assert_usage_error(crossfuse("eval", tiny_face_run.run_dir, "--data", folder / "nope"), "no such file")
    assert_usage_error(crossfuse("eval", tiny_face_run.run_dir, "--data", folder, "--split", "validation"),
                       "holds a single split")


def test_eval_of_identity_folders_asks_for_pairs(tiny_face_run, tmp_path):
    root = write_people(tmp_path / "people", {"Ann_A": 2, "Ben_B": 2})
    assert_usage_error(crossfuse("eval", tiny_face_run.run_dir, "--data", root), "'identity-folders'",
                       "pairs of images", "data.pairs_format")


def test_the_task_state_holds_identities_and_the_operating_point_predict_uses(tiny_face_run, tmp_path):
    state = json.loads((tiny_face_run.run_dir / "task_state.json").read_text())
    assert state["operating_point"] == tiny_face_run.report["splits"]["validation"]["operating_point"]
    assert len(state["identities"]) == 6  # 8 demo people, 2 held out for validation pairs
    run = tmp_path / "run"
    shutil.copytree(tiny_face_run.run_dir, run)
    state["operating_point"]["threshold"] = -1.0  # edited: everything now matches
    (run / "task_state.json").write_text(json.dumps(state))
    a, b = _pair_of_one_person(tiny_face_run)
    [match] = json.loads(crossfuse("predict", run, a, b, "--json").stdout)
    assert match["threshold"] == -1.0 and match["same"] is True
    metrics = json.loads(crossfuse("eval", run, "--data", _demo_test_folder(tiny_face_run), "--json").stdout)
    assert metrics["at_saved_threshold"] == {"threshold": -1.0, "far": 1.0, "tar": 1.0}


def test_a_run_saved_before_task_state_predicts_with_its_report(tiny_face_run, tmp_path):
    run = tmp_path / "old-run"
    shutil.copytree(tiny_face_run.run_dir, run)
    (run / "task_state.json").unlink()
    a, b = _pair_of_one_person(tiny_face_run)
    [match] = json.loads(crossfuse("predict", run, a, b, "--json").stdout)
    assert match["threshold"] == tiny_face_run.report["splits"]["validation"]["operating_point"]["threshold"]
    (run / "report.json").unlink()
    failed = crossfuse("predict", run, a, b)
    assert failed.returncode != 0 and "no calibrated threshold" in failed.stderr and "--threshold" in failed.stderr
    assert crossfuse("predict", run, a, b, "--threshold", "0.5").returncode == 0


def test_explain_writes_a_heat_map_for_each_image_of_a_pair(tiny_face_run, tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from crossfuse.explain import save_heatmap
    from crossfuse.media import load_image

    a, b = _pair_of_one_person(tiny_face_run)
    result = crossfuse("predict", tiny_face_run.run_dir, a, b, "--explain", "--explain-dir", tmp_path / "why",
                       "--json")
    assert result.returncode == 0, result.stderr
    [match] = json.loads(result.stdout)
    assert -1.0 <= match["similarity"] <= 1.0 and len(match["heatmaps"]) == 2
    for image, written in zip((a, b), match["heatmaps"]):
        assert Path(written).parent == tmp_path / "why" and image.stem in Path(written).name
        blank = save_heatmap(load_image(image), torch.zeros(32, 32), tmp_path / "blank.png")
        assert not np.array_equal(np.asarray(Image.open(written)), np.asarray(Image.open(tmp_path / blank)))
    plain = crossfuse("predict", tiny_face_run.run_dir, a, b, "--explain", "--explain-dir", tmp_path / "again")
    assert "heat maps: " in plain.stdout
    assert_usage_error(crossfuse("predict", tiny_face_run.run_dir, a, "--explain"), "takes images in pairs")


def test_predict_help_lists_the_face_options(tiny_face_run):
    text = crossfuse("predict", tiny_face_run.run_dir, "--help").stdout
    section = text[text.index("Options of this run's task (security-face-match)"):]
    for option in ("--gallery STR", "--top-k INT", "--threshold FLOAT", "--output STR"):
        assert option in section
    assert "calibrated on" in section and "1:N search" in section and "[default: 5]" in section
