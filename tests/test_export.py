"""`crossfuse export`: a tiny finance run to ONNX and TorchScript (fp32 and int8), checked against PyTorch."""

from __future__ import annotations

import json
import sys

import pytest

from crossfuse.testing import run_cli, smoke_fit


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """finance-sentiment on the demo data, tiny-bert, one epoch."""
    root = tmp_path_factory.mktemp("export")
    return smoke_fit("finance-sentiment", root / "run", overrides=["train.batch_size=32", "train.lr=1e-3"]).run_dir


@pytest.fixture(scope="module")
def onnx_int8(run_dir):
    from crossfuse import api

    return api.export(run_dir, "onnx", quantize="int8")


@pytest.fixture(scope="module")
def torchscript_int8(run_dir):
    from crossfuse import api

    return api.export(run_dir, "torchscript", quantize="int8")


@pytest.mark.parametrize("which", ["onnx_int8", "torchscript_int8"])
def test_the_fp32_export_matches_pytorch_on_the_test_split(which, request):
    parity = request.getfixturevalue(which).parity
    fp32, pytorch = parity["results"]["fp32"], parity["results"]["pytorch"]
    assert parity["split"] == "test" and parity["samples"] > 50
    assert fp32["max_abs_diff"] < 1e-4
    assert fp32["metrics"]["macro_f1"] == pytest.approx(pytorch["metrics"]["macro_f1"], abs=1e-9)


@pytest.mark.parametrize("which", ["onnx_int8", "torchscript_int8"])
def test_int8_is_smaller_and_scores_close_to_fp32(which, request):
    results = request.getfixturevalue(which).parity["results"]
    assert results["int8"]["file_mb"] < results["fp32"]["file_mb"]
    assert 0 < results["int8"]["max_abs_diff"] < 0.1  # quantised weights do change the numbers, a little
    assert abs(results["int8"]["metrics"]["accuracy"] - results["fp32"]["metrics"]["accuracy"]) <= 0.05
    assert "Linear" in results["int8"]["quantization"]["quantized"] or \
        "MatMul" in results["int8"]["quantization"]["quantized"]


def test_an_int8_export_keeps_only_the_int8_file_beside_its_descriptor(onnx_int8):
    names = sorted(p.name for p in onnx_int8.folder.iterdir())
    assert onnx_int8.folder.name == "onnx-int8" and onnx_int8.folder.parent.name == "export"
    assert names == ["model.onnx", "parity.json", "preprocessing.json", "tokenizer"]
    assert json.loads((onnx_int8.folder / "parity.json").read_text()) == json.loads(json.dumps(onnx_int8.parity))


def test_the_onnx_file_takes_texts_of_any_length_through_the_saved_tokenizer(onnx_int8, run_dir, tmp_path):
    import onnxruntime
    import torch
    from transformers import AutoTokenizer

    from crossfuse import api

    descriptor = json.loads((onnx_int8.folder / "preprocessing.json").read_text())
    assert [i["name"] for i in descriptor["inputs"]] == ["input_ids", "attention_mask"]
    assert descriptor["inputs"][0]["shape"] == ["batch", "sequence"]
    assert descriptor["labels"] == ["negative", "neutral", "positive"]
    tokenizer = AutoTokenizer.from_pretrained(onnx_int8.folder / descriptor["produced_by"]["backbone"]["tokenizer"])
    texts = ["Profit rose", "The company cut its full-year forecast after weak demand in Europe and Asia"]
    encoded = tokenizer(texts, padding=True, return_tensors="np")
    fp32 = api.export(run_dir, "onnx", output=tmp_path / "fp32")
    session = onnxruntime.InferenceSession(str(fp32.model_file), providers=["CPUExecutionProvider"])
    logits = session.run(None, {k: encoded[k] for k in ("input_ids", "attention_mask")})[0]
    model = api.load(run_dir).model
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(encoded[k]) for k in ("input_ids", "attention_mask")}).numpy()
    assert logits.shape == (2, 3) and abs(logits - expected).max() < 1e-4


def test_an_existing_export_is_not_written_over(onnx_int8, run_dir):
    before = (onnx_int8.folder / "model.onnx").stat().st_mtime_ns
    result = run_cli("export", run_dir, "--format", "onnx", "--quantize", "int8")
    assert result.returncode == 2
    assert "already holds an export" in result.stderr and "--overwrite" in result.stderr
    assert (onnx_int8.folder / "model.onnx").stat().st_mtime_ns == before


def test_overwrite_replaces_an_export_and_json_prints_one_document(run_dir, tmp_path):
    target = tmp_path / "ts"
    assert run_cli("export", run_dir, "--format", "torchscript", "--output", target).returncode == 0
    result = run_cli("export", run_dir, "--format", "torchscript", "--output", target, "--overwrite", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["model"] == str(target / "model.pt")
    assert document["parity"]["results"]["fp32"]["max_abs_diff"] < 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or old folder left


def test_overwrite_refuses_a_folder_that_is_not_an_export(run_dir, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = run_cli("export", run_dir, "--format", "onnx", "--output", tmp_path, "--overwrite")
    assert result.returncode == 2 and "not a crossfuse export folder" in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_a_failed_export_leaves_nothing_behind(run_dir, tmp_path, monkeypatch):
    from crossfuse import api, export

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "write_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        api.export(run_dir, "onnx", output=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    result = run_cli("export", tmp_path, "--format", "onnx")
    assert result.returncode == 2
    assert "is not a crossfuse run directory" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_format_is_a_usage_error(run_dir):
    result = run_cli("export", run_dir, "--format", "tflite")
    assert result.returncode == 2 and "'tflite' is not one of 'onnx', 'torchscript'" in result.stderr


def test_a_missing_onnxruntime_names_the_extra_to_install(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    result = run_cli("export", run_dir, "--format", "onnx", "--output", tmp_path / "out")
    assert result.returncode == 2
    assert "onnxruntime" in result.stderr and "pip install 'crossfuse[export]'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_task_whose_predict_step_never_calls_its_model_must_say_what_to_export():
    import torch

    from crossfuse.errors import CrossfuseError
    from crossfuse.export import spec_from_call

    class Parts(torch.nn.Module):
        def encode(self, x):
            return x

    class PartsTask:
        name = "parts"

        def predict_step(self, model, batch):
            return {"x": model.encode(batch["x"])}

    with pytest.raises(CrossfuseError, match="must implement Task.export_spec"):
        spec_from_call(PartsTask(), Parts(), {"x": torch.zeros(2, 3)})
