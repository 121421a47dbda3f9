"""`crossfuse serve` on a tiny multi-label medical run: PNG and DICOM uploads get what Predictor.predict returns."""

from __future__ import annotations

import numpy as np
import pytest

from medical_files import write_dicom, write_films, write_png
from serve_client import by_name, served, upload


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from crossfuse import api
    from crossfuse.testing import smoke_fit

    root = tmp_path_factory.mktemp("medical-serve")
    result = smoke_fit("medical-imaging", root / "run", data=str(write_films(root / "films.npz")),
                       overrides=["backbone.image_size=32", "train.batch_size=16"])
    return api.load(result.run_dir)


def test_png_and_dicom_uploads_get_the_findings_predict_returns(predictor, tmp_path):
    png = write_png(tmp_path / "film.png", np.full((32, 32), 90, dtype=np.uint8))
    dicom = write_dicom(tmp_path / "film.dcm", np.arange(32 * 40, dtype=np.uint16).reshape(32, 40))
    expected = by_name(predictor.predict([str(png), str(dicom)]), {str(png): "film.png", str(dicom): "film.dcm"})
    with served({"chest": predictor}) as server:
        answer = upload(server.url + "/runs/chest/predict", [png, dicom])
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected and [p["input"] for p in answer.json()] == ["film.png", "film.dcm"]


def test_a_literal_option_outside_its_choices_is_a_400_listing_them(predictor, tmp_path):
    png = write_png(tmp_path / "film.png", np.full((32, 32), 90, dtype=np.uint8))
    with served({"chest": predictor}) as server:
        answer = upload(server.url + "/predict", [png], {"heatmaps": "some"})
    assert answer.status_code == 400 and "'positive', 'top', 'all'" in answer.json()["error"]


def test_the_fused_task_serves_an_image_with_its_note_as_a_form_field(tmp_path_factory, tmp_path):
    from crossfuse import api
    from crossfuse.testing import smoke_fit

    root = tmp_path_factory.mktemp("fusion-serve")
    result = smoke_fit("medical-image-report", root / "run", data=str(write_films(root / "films.npz")),
                       overrides=["backbones.image.image_size=32", "train.batch_size=16"])
    fused = api.load(result.run_dir)
    film = write_png(tmp_path / "film.png", np.full((32, 32), 100, dtype=np.uint8))
    note = "orthopnoea, ?LVF"
    expected = by_name(fused.predict([str(film)], note=note), {str(film): "film.png"})
    with served({"report": fused}) as server:
        answer = upload(server.url + "/predict", [film], {"note": note})
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected
    assert expected != by_name(fused.predict([str(film)]), {str(film): "film.png"})  # the note reached the model
