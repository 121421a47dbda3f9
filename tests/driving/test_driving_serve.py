"""`crossfuse serve` on a tiny detection run: an uploaded road image in, what Predictor.predict returns out."""

from __future__ import annotations

from driving_files import write_image
from serve_client import by_name, served, upload


def test_an_uploaded_image_gets_the_detections_predict_returns(tiny_detection_run, tmp_path):
    from crossfuse import api

    predictor = api.load(tiny_detection_run.run_dir)
    image = write_image(tmp_path / "road.png", width=160, height=48)
    expected = by_name(predictor.predict([str(image)], score_threshold=0.0, draw=False), {str(image): "road.png"})
    with served({"drive": predictor}) as server:
        answer = upload(server.url + "/predict", [image], {"score_threshold": "0.0", "draw": "false"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected and answer.json()[0]["input"] == "road.png"


def test_a_request_cannot_name_a_server_folder_to_write_to(tiny_detection_run, tmp_path):
    from crossfuse import api

    predictor = api.load(tiny_detection_run.run_dir)
    image = write_image(tmp_path / "road.png", width=160, height=48)
    with served({"drive": predictor}) as server:
        answer = upload(server.url + "/predict", [image], {"output": str(tmp_path / "elsewhere")})
        info = server.runs["drive"].info()
    assert answer.status_code == 400 and "'output'" in answer.json()["error"] and "serve=False" in answer.json()["error"]
    assert not (tmp_path / "elsewhere").exists() and "output" not in [o["name"] for o in info["options"]]
