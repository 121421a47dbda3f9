"""security-face-match end to end: a short CPU run, 1:1 and 1:N predict, and bad input through the CLI."""

from __future__ import annotations

import json
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
