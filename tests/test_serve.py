"""`crossfuse serve`: the HTTP service over a tiny finance run, its errors, token, batching and CLI.

Each test serves loaded runs on a free 127.0.0.1 port in a background thread (uvicorn) and talks to
it with real HTTP requests; the per-task tests live beside each plugin's tiny-run fixture.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from cli_runner import assert_usage_error
from cli_runner import crossfuse as cli
from serve_client import CountedPredictor, served

TEXTS = ["Profit doubled in the third quarter", "The company cut 500 jobs", "Shares were flat"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from crossfuse.testing import smoke_fit

    return smoke_fit("finance-sentiment", tmp_path_factory.mktemp("serve") / "fin",
                     overrides=["train.batch_size=32", "train.lr=1e-3"]).run_dir


@pytest.fixture(scope="module")
def loaded(text_run):
    from crossfuse import api

    return api.load(text_run)


@pytest.fixture
def counted(loaded):
    counter = CountedPredictor(loaded)
    yield counter
    loaded.predict = counter.original


def post(server, body, path="/predict", **kwargs):
    return httpx.post(server.url + path, json=body, timeout=60, **kwargs)


# -- predictions, health, info, docs -------------------------------------------------------------


def test_predict_answers_what_crossfuse_predict_json_prints(text_run, loaded):
    printed = cli("predict", text_run, *TEXTS, "--json")
    assert printed.returncode == 0, printed.stderr
    with served({"fin": loaded}) as server:
        answer = post(server, {"inputs": TEXTS})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == json.loads(printed.stdout)


def test_options_reach_the_task(loaded, counted):
    with served({"fin": loaded}) as server:
        answer = post(server, {"inputs": TEXTS[:1], "options": {"batch_size": 1}})
    assert answer.status_code == 200 and counted.calls == [(TEXTS[:1], {"batch_size": 1})]


def test_one_run_is_served_at_predict_and_under_its_name(loaded):
    with served({"fin": loaded}) as server:
        bare, named = post(server, {"inputs": TEXTS}), post(server, {"inputs": TEXTS}, "/runs/fin/predict")
        info, named_info = httpx.get(server.url + "/info"), httpx.get(server.url + "/runs/fin/info")
    assert bare.json() == named.json() and info.json()["task"] == named_info.json()["task"] == "finance-sentiment"


def test_health_names_the_runs_and_needs_no_token(loaded):
    with served({"fin": loaded}, token="s3cret") as server:
        health = httpx.get(server.url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "runs": ["fin"]}


def test_info_gives_task_labels_backbone_metrics_options_and_limits(loaded, text_run):
    report = json.loads((text_run / "report.json").read_text())
    with served({"fin": loaded}, max_batch_size=4) as server:
        info = httpx.get(server.url + "/info").json()
    assert (info["task"], info["backbone"], info["main_metric"]) == ("finance-sentiment", "tiny-bert", "macro_f1")
    assert info["labels"] == ["negative", "neutral", "positive"]
    assert info["metrics"]["test"]["macro_f1"] == report["splits"]["test"]["macro_f1"]
    assert info["inputs"]["content_type"] == "application/json"
    assert [o["name"] for o in info["options"]] == ["batch_size"]
    assert info["limits"] == {"max_batch_size": 4, "max_wait_ms": 10.0, "max_inputs": 64, "max_upload_mb": 16.0}


def test_openapi_docs_are_served(loaded):
    with served({"fin": loaded}) as server:
        schema, docs = httpx.get(server.url + "/openapi.json"), httpx.get(server.url + "/docs")
    assert "/runs/{name}/predict" in schema.json()["paths"] and docs.status_code == 200 and "swagger" in docs.text


# -- the token -----------------------------------------------------------------------------------


@pytest.mark.parametrize("header, status", [(None, 401), ("Bearer wrong", 401), ("s3cret", 401),
                                            ("Bearer s3cret", 200)])
def test_every_route_but_health_needs_the_token(loaded, header, status):
    headers = {"Authorization": header} if header else {}
    with served({"fin": loaded}, token="s3cret") as server:
        answers = [post(server, {"inputs": TEXTS}, headers=headers), httpx.get(server.url + "/info", headers=headers),
                   httpx.get(server.url + "/openapi.json", headers=headers)]
    assert [a.status_code for a in answers] == [status] * 3
    if status == 401:
        assert "Authorization: Bearer" in answers[0].json()["error"]


# -- bad requests --------------------------------------------------------------------------------


@pytest.mark.parametrize("body, status, phrases", [
    ({"inputs": []}, 400, ["no inputs"]),
    ({"inputs": TEXTS, "extra": 1}, 400, ["unknown field 'extra'", "inputs, options"]),
    ({"inputs": TEXTS, "options": {"treshold": 1}}, 400, ["unknown option 'treshold'", "valid options: batch_size"]),
    ({"inputs": TEXTS, "options": {"batch_size": "many"}}, 400, ["batch_size must be int"]),
    ({"inputs": ["a", 3]}, 400, ["inputs[1] must be a text"]),
    ({"inputs": "one text"}, 400, ['"inputs" must be a list']),
    ({"inputs": ["a"] * 5}, 413, ["5 inputs", "serve.max_inputs is 4"]),
])
def test_bad_json_requests_get_a_4xx_naming_the_problem(loaded, body, status, phrases):
    with served({"fin": loaded}, max_inputs=4) as server:
        answer = post(server, body)
    assert answer.status_code == status
    for phrase in phrases:
        assert phrase in answer.json()["error"]


def test_a_body_that_is_not_json_is_a_400(loaded):
    with served({"fin": loaded}) as server:
        answer = httpx.post(server.url + "/predict", content=b"{inputs", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def test_a_text_task_refuses_other_content_types_with_415(loaded, tmp_path):
    (tmp_path / "a.txt").write_text("Profit doubled")
    with served({"fin": loaded}) as server:
        plain = httpx.post(server.url + "/predict", content=b"Profit doubled", headers={"content-type": "text/plain"})
        form = httpx.post(server.url + "/predict", files=[("files", ("a.txt", b"Profit doubled"))])
    assert plain.status_code == form.status_code == 415
    assert "takes texts, sent as application/json" in plain.json()["error"]


def test_an_oversized_body_is_a_413_naming_the_limit_and_its_key(loaded):
    with served({"fin": loaded}, max_upload_mb=0.001) as server:
        answer = post(server, {"inputs": ["x" * 2000]})
    assert answer.status_code == 413
    assert "serve.max_upload_mb = 0.001 MB" in answer.json()["error"] and "--max-upload-mb" in answer.json()["error"]


def test_unknown_runs_and_routes_are_404s_listing_the_names(loaded):
    with served({"fin": loaded}) as server:
        run, route = post(server, {"inputs": TEXTS}, "/runs/nope/predict"), httpx.get(server.url + "/nothing")
    assert run.status_code == 404 and run.json() == {"error": "no run named 'nope'; served runs: fin"}
    assert route.status_code == 404 and "error" in route.json()


def test_an_unexpected_failure_is_a_500_with_a_message_and_a_logged_traceback(loaded, caplog):
    def broken(inputs, **options):
        raise RuntimeError("the model fell over")

    original, loaded.predict = loaded.predict, broken
    try:
        with caplog.at_level(logging.ERROR, logger="crossfuse.serve"), served({"fin": loaded}) as server:
            answer = post(server, {"inputs": TEXTS})
    finally:
        loaded.predict = original
    assert answer.status_code == 500 and "RuntimeError: the model fell over" in answer.json()["error"]
    assert "Traceback" not in answer.text
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


# -- batching ------------------------------------------------------------------------------------


def concurrently(server, bodies, path="/predict"):
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: post(server, body, path), bodies))


def test_concurrent_requests_share_model_calls_and_get_the_unbatched_answers(loaded, counted):
    bodies = [{"inputs": [f"{text} ({i})"]} for i, text in enumerate(TEXTS * 4)]
    with served({"fin": loaded}, max_batch_size=1) as server:
        alone = concurrently(server, bodies)
    unbatched_calls = len(counted.calls)
    counted.calls.clear()
    with served({"fin": loaded}, max_batch_size=16, max_wait_ms=300) as server:
        together = concurrently(server, bodies)
    assert unbatched_calls == len(bodies) and len(counted.calls) < len(bodies)
    for one, other in zip(alone, together):
        [a], [b] = one.json(), other.json()
        assert a["input"] == b["input"] and a["label"] == b["label"]
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=2e-4)  # padding to a longer batch


def test_requests_with_different_options_are_not_batched_together(loaded, counted):
    bodies = [{"inputs": TEXTS[:1], "options": {"batch_size": size}} for size in (1, 2, 1, 2)]
    with served({"fin": loaded}, max_batch_size=16, max_wait_ms=300) as server:
        answers = concurrently(server, bodies)
    assert all(a.status_code == 200 for a in answers)
    assert sorted((options["batch_size"], len(inputs)) for inputs, options in counted.calls) == [(1, 2), (2, 2)]


def gather(batcher, jobs):
    async def main():
        return await asyncio.gather(*(batcher.predict(inputs, {}, "same", per) for inputs, per in jobs),
                                    return_exceptions=True)

    return asyncio.run(main())


def test_the_batcher_answers_a_failing_request_alone_and_the_others_normally():
    from crossfuse.errors import DataError
    from crossfuse.serve import Batcher

    calls = []

    def predict(inputs):
        calls.append(list(inputs))
        if "bad" in inputs:
            raise DataError("bad: cannot read the image")
        return [{"input": x} for x in inputs]

    batcher = Batcher(predict, 8, 200, concurrent.futures.ThreadPoolExecutor(1))
    good, bad = gather(batcher, [(["a", "b"], 1), (["bad"], 1)])
    assert good == [{"input": "a"}, {"input": "b"}]
    assert isinstance(bad, DataError) and str(bad) == "bad: cannot read the image"
    assert calls == [["a", "b", "bad"], ["a", "b"], ["bad"]]


def test_the_batcher_splits_by_inputs_per_prediction_and_runs_odd_requests_alone():
    from crossfuse.serve import Batcher

    calls = []

    def predict(inputs):  # pairs: two inputs make one prediction
        calls.append(list(inputs))
        return [{"input": [inputs[i], inputs[i + 1]]} for i in range(0, len(inputs) - 1, 2)]

    batcher = Batcher(predict, 8, 200, concurrent.futures.ThreadPoolExecutor(1))
    first, second, odd = gather(batcher, [(["a", "b"], 2), (["c", "d", "e", "f"], 2), (["g", "h", "i"], 2)])
    assert first == [{"input": ["a", "b"]}] and second == [{"input": ["c", "d"]}, {"input": ["e", "f"]}]
    assert calls == [["a", "b", "c", "d", "e", "f"], ["g", "h", "i"]] and odd == [{"input": ["g", "h"]}]


# -- several runs, names, the command ------------------------------------------------------------


def test_two_runs_in_one_process_are_served_under_their_names(text_run):
    from crossfuse import api

    first, second = CountedPredictor(api.load(text_run)), CountedPredictor(api.load(text_run))
    with served({"a": first.predictor, "b": second.predictor}) as server:
        health = httpx.get(server.url + "/health").json()
        answer = post(server, {"inputs": TEXTS}, "/runs/b/predict")
        bare = post(server, {"inputs": TEXTS})
    assert health["runs"] == ["a", "b"] and answer.status_code == 200 and len(answer.json()) == 3
    assert (len(first.calls), len(second.calls)) == (0, 1)
    assert bare.status_code == 404 and "a, b" in bare.json()["error"]


def test_runs_are_named_by_name_equals_dir_or_their_folder():
    from crossfuse.errors import ConfigError
    from crossfuse.serve import run_names

    assert run_names(["fin=runs/x", "runs/face"]) == {"fin": "runs/x", "face": "runs/face"}
    with pytest.raises(ConfigError, match="two runs are named 'x'"):
        run_names(["runs/x", "other/x"])


@pytest.mark.parametrize("args, phrase", [
    (["/no/such/run"], "not a crossfuse run directory"),
    (["a={run}", "a={run}"], "two runs are named 'a'"),
    (["{run}", "--port", "70000"], "--port"),
    (["{run}", "--max-batch-size", "0"], "--max-batch-size"),
])
def test_bad_serve_command_lines_exit_2(text_run, args, phrase):
    result = cli("serve", *[a.format(run=text_run) for a in args])
    assert_usage_error(result, phrase)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_serve_command_binds_loopback_and_answers(text_run, workers):
    port = free_port()
    env = {**os.environ, "CROSSFUSE_SERVE_TOKEN": "t0k", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "crossfuse.cli", "serve", f"fin={text_run}", "--port", str(port),
                                "--max-batch-size", "4", "--workers", str(workers)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while True:
            try:
                health = httpx.get(url + "/health", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"crossfuse serve did not answer:\n{process.communicate()[0][-3000:]}")
                time.sleep(0.3)
        answer = httpx.post(url + "/runs/fin/predict", json={"inputs": TEXTS}, headers={"Authorization": "Bearer t0k"})
        info = httpx.get(url + "/info", headers={"Authorization": "Bearer t0k"}).json()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"fin: http://127.0.0.1:{port}/runs/fin/predict" in output and "a bearer token" in output
    assert health.json() == {"status": "ok", "runs": ["fin"]}
    assert answer.status_code == 200 and [p["input"] for p in answer.json()] == TEXTS
    assert info["limits"]["max_batch_size"] == 4
