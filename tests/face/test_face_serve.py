"""`crossfuse serve` on a tiny face run: pairs of uploaded images in, what Predictor.predict returns out."""

from __future__ import annotations

import httpx
import pytest

from serve_client import CountedPredictor, by_name, served, upload


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    from crossfuse.testing import make_images

    folder = tmp_path_factory.mktemp("faces")
    make_images(folder, labels=("ann", "bob"), per_label=2, size=32)
    return sorted(folder.glob("*/*.png"))


@pytest.fixture(scope="module")
def predictor(tiny_face_run):
    from crossfuse import api

    return api.load(tiny_face_run.run_dir)


def test_pairs_of_uploads_get_what_predict_returns_named_by_file(predictor, faces):
    expected = by_name(predictor.predict([str(p) for p in faces]), {str(p): p.name for p in faces})
    with served({"face": predictor}) as server:
        answer = upload(server.url + "/predict", faces)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected and answer.json()[0]["input"] == [faces[0].name, faces[1].name]


def test_concurrent_pairs_are_batched_and_split_back_pair_by_pair(predictor, faces):
    import concurrent.futures

    counter = CountedPredictor(predictor)
    try:
        with served({"face": predictor}, max_batch_size=8, max_wait_ms=300) as server:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda pair: upload(server.url + "/predict", pair),
                                        [faces[:2], faces[2:], faces[1:3], [faces[0], faces[3]]]))
    finally:
        predictor.predict = counter.original
    assert [len(a.json()) for a in answers] == [1, 1, 1, 1] and len(counter.calls) < 4
    assert answers[2].json()[0]["input"] == [faces[1].name, faces[2].name]


def test_an_odd_number_of_images_gets_the_tasks_own_message_as_a_400(predictor, faces):
    with served({"face": predictor}) as server:
        answer = upload(server.url + "/predict", faces[:3])
    assert answer.status_code == 400 and "1:1 matching takes images in pairs (got 3)" in answer.json()["error"]


def test_an_unreadable_image_is_a_400_naming_the_upload_not_a_temporary_path(predictor, faces, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with served({"face": predictor}) as server:
        answer = upload(server.url + "/predict", [faces[0], broken])
    message = answer.json()["error"]
    assert answer.status_code == 400 and message.startswith("broken.png: cannot read the image")
    assert "crossfuse-serve-" not in message


def test_an_upload_over_the_limit_is_a_413_and_json_is_a_415(predictor, faces):
    with served({"face": predictor}, max_upload_mb=0.0001) as server:
        large = upload(server.url + "/predict", faces[:2])
        text = httpx.post(server.url + "/predict", json={"inputs": [str(faces[0]), str(faces[1])]})
    assert large.status_code == 413 and "serve.max_upload_mb" in large.json()["error"]
    assert text.status_code == 415 and "multipart/form-data" in text.json()["error"]


def test_option_fields_reach_the_task_typed(predictor, faces):
    with served({"face": predictor}) as server:
        answer = upload(server.url + "/predict", faces[:2], {"threshold": "0.25"})
        wrong = upload(server.url + "/predict", faces[:2], {"treshold": "0.25"})
    assert answer.json()[0]["threshold"] == 0.25 and answer.json()[0]["source"] == "--threshold"
    assert wrong.status_code == 400 and "unknown option 'treshold'" in wrong.json()["error"]
    assert "threshold" in wrong.json()["error"].split("valid options:")[1]



def test_a_client_cannot_point_the_server_at_a_gallery_folder(predictor, faces):
    with served({"face": predictor}) as server:
        answer = upload(server.url + "/predict", faces[:1], {"gallery": "/etc"})
    assert answer.status_code == 400
    assert "'gallery'" in answer.json()["error"] and "cannot be set over HTTP" in answer.json()["error"]
