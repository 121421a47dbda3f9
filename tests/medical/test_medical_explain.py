"""`crossfuse predict RUN IMAGE --explain`: Grad-CAM heat maps over each image, written into the
explanation folder (never next to the input), one per explained finding, and not flat."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import crossfuse as cli
from medical_files import write_films, write_png

FAST = ["--set", "backbone.name=tiny-cnn", "--set", "backbone.image_size=64", "--set", "train.progress=false",
        "--set", "train.batch_size=16", "--epochs", "2", "--set", "data.demo.size=64"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    data = write_films(root / "films.npz", 48, 16, 8, size=64)
    result = cli("run", "medical-imaging", "--data", data, "--output", root / "run", *FAST)
    assert result.returncode == 0, result.stderr
    images = np.load(data)["test_images"]
    return root / "run", [write_png(root / "inputs" / f"film{i}.png", images[i]) for i in range(3)]


def test_explain_writes_one_heat_map_per_finding_into_the_explanation_folder(trained, tmp_path):
    run_dir, films = trained
    result = cli("predict", run_dir, *films, "--explain", "--explain-dir", tmp_path / "why", "--heatmaps", "all",
                 "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["input"] for p in predictions] == [str(f) for f in films]
    written = sorted(p.name for p in (tmp_path / "why").iterdir())
    assert len(written) == 12 and written[0] == "001_film0_cardiomegaly.png"
    assert sorted(f.name for f in films[0].parent.iterdir()) == ["film0.png", "film1.png", "film2.png"]  # untouched
    for prediction in predictions:
        assert set(prediction["heatmaps"]) == {"opacity", "nodule", "effusion", "cardiomegaly"}
    with Image.open(next(iter(predictions[0]["heatmaps"].values()))) as picture:
        assert picture.mode == "RGB" and picture.size == (256, 256)  # the 64-pixel film, enlarged
        red, _, blue = (np.asarray(picture, dtype=int)[..., c] for c in range(3))
        assert np.abs(red - blue).max() > 20  # the colour map is drawn over the grey film


def test_by_default_the_positive_findings_or_the_top_one_get_a_map(trained):
    run_dir, films = trained
    predictions = json.loads(cli("predict", run_dir, films[0], "--explain", "--json").stdout)
    prediction = predictions[0]
    positive = [f["name"] for f in prediction["findings"] if f["positive"]]
    top = max(prediction["findings"], key=lambda f: f["probability"])["name"]
    assert sorted(prediction["heatmaps"]) == sorted(positive or [top])
    folder = next((run_dir / "explanations").iterdir())  # RUN_DIR/explanations/TIMESTAMP by default
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.rsplit("/", 1)[-1] for p in prediction["heatmaps"].values())
    assert "heat map (" in cli("predict", run_dir, films[1], "--explain", "--explain-dir", run_dir / "other").stdout


def test_grad_cam_maps_are_not_flat(trained):
    import crossfuse
    from crossfuse_medical.explain import cam_layer, heatmaps, non_trivial

    run_dir, films = trained
    predictor = crossfuse.load(run_dir)
    task, model = predictor.task, predictor.model
    batch = task.collate([task.preprocess(task.load_input(str(f)), train=False) for f in films])
    layer = cam_layer(model.backbone, batch["images"][:1])
    assert isinstance(layer, torch.nn.Module)
    pairs = [(row, index) for row in range(3) for index in range(4)]
    with torch.enable_grad():
        maps = heatmaps(lambda images: model(images=images), layer, batch["images"], pairs)
    assert maps.shape == (12, 64, 64) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert sum(non_trivial(m) for m in maps) >= 6  # most maps show where the finding's score came from
