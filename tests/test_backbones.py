"""Backbones: the three modalities build and run; sources resolve; missing downloads fail fast."""

from __future__ import annotations

import time

import pytest
import torch

from crossfuse.api import get_backbone, list_backbones
from crossfuse.backbones import build_backbone, resolve_source
from crossfuse.errors import CrossfuseError, UnknownNameError
from crossfuse.testing import write_tiny_text_backbone


def test_every_modality_has_registered_backbones():
    modalities = {b["modality"] for b in list_backbones()}
    assert modalities == {"text", "image", "audio"}
    assert {b["name"] for b in list_backbones("audio")} >= {"mel-cnn", "wav2vec2-base"}


def test_tiny_bert_tokenizes_and_pools_to_its_feature_dim():
    backbone = get_backbone("tiny-bert")
    batch = backbone.tokenize(["Profit rose 5%", "Shares fell"])
    features = backbone(**batch)
    assert features.shape == (2, backbone.feature_dim) == (2, 64)
    assert 1 not in batch["input_ids"][0].tolist()  # no [UNK] for ASCII text


def test_mean_pooling_ignores_padding():
    backbone = get_backbone("tiny-bert").eval()
    alone = backbone(**backbone.tokenize(["rates"]))
    padded = backbone(**backbone.tokenize(["rates", "a much longer sentence about interest rates"]))
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_local_directory_backbone_loads_like_a_downloaded_one(tmp_path):
    directory = write_tiny_text_backbone(tmp_path / "zh", texts=["利润增长"])
    backbone = get_backbone(str(directory))
    ids = backbone.tokenize(["利润增长"])["input_ids"][0].tolist()
    assert backbone.tokenizer.unk_token_id not in ids
    assert backbone(**backbone.tokenize(["利润增长"])).shape == (1, 32)


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(CrossfuseError, match="no config.json"):
        get_backbone(str(tmp_path))


def test_hub_model_without_network_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.time()
    with pytest.raises(CrossfuseError, match="--backbone DIR"):
        get_backbone("hf:an-org/a-model-nobody-cached")
    assert time.time() - started < 10


def test_sources_resolve_by_prefix_and_path(tmp_path):
    assert resolve_source("hf:bert-base-chinese") == ("hf", "bert-base-chinese")
    assert resolve_source(str(tmp_path)) == ("local", str(tmp_path))
    assert resolve_source("resnet18") == ("registry", "resnet18")
    with pytest.raises(CrossfuseError, match="does not exist"):
        resolve_source("./no/such/dir")


def test_unknown_backbone_suggests_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'tiny-bert'"):
        build_backbone("tiny-bret")


def test_torchvision_backbone_random_init_outputs_features():
    backbone = get_backbone("resnet18", pretrained=False, image_size=64)
    assert backbone.modality == "image" and backbone.feature_dim == 512
    image = torch.randint(0, 255, (3, 80, 100), dtype=torch.uint8)
    batch = backbone.transform(image).unsqueeze(0)
    assert batch.shape == (1, 3, 64, 64)
    assert backbone.eval()(batch).shape == (1, 512)


def test_mel_cnn_turns_waveforms_into_clip_features():
    backbone = get_backbone("mel-cnn").eval()
    assert backbone(torch.randn(2, 16_000)).shape == (2, backbone.feature_dim)


def test_local_weights_file_is_loaded_into_the_architecture(tmp_path):
    from safetensors.torch import save_file

    source = get_backbone("tiny-cnn")
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    loaded = get_backbone("tiny-cnn", weights=str(tmp_path / "w.safetensors"))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_weights_file_with_no_matching_tensors_is_refused(tmp_path):
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(CrossfuseError, match="no tensor"):
        get_backbone("tiny-cnn", weights=str(tmp_path / "w.pt"))
