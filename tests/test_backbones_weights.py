"""backbone.weights: torchvision, DDP, Lightning and transformers state dicts find their place in a backbone."""

from __future__ import annotations

import pytest
import torch

from crossfuse.backbones import WeightsReport, build_backbone
from crossfuse.errors import CrossfuseError


@pytest.fixture(scope="module")
def torchvision_resnet18():
    from torchvision.models import resnet18

    torch.manual_seed(3)
    return resnet18().state_dict()  # torchvision's names: conv1.weight ... fc.bias


def test_torchvision_file_loads_into_the_registry_resnet(tmp_path, capsys, torchvision_resnet18):
    torch.save(torchvision_resnet18, tmp_path / "resnet18.pth")
    backbone = build_backbone("resnet18", pretrained=False, weights=str(tmp_path / "resnet18.pth"))
    report = backbone.weights_report
    assert isinstance(report, WeightsReport)
    assert (report.loaded, report.total, report.file_prefix, report.backbone_prefix) == (120, 122, "", "body.")
    assert report.not_in_backbone == ["fc.weight", "fc.bias"] and report.missing == []
    assert torch.equal(backbone.body.layer3[0].conv1.weight, torchvision_resnet18["layer3.0.conv1.weight"])
    line = capsys.readouterr().err.strip()
    assert line == (f"backbone.weights: loaded 120 of 122 tensors from {tmp_path / 'resnet18.pth'} "
                    f"(file prefix '' -> 'body.'); not in the backbone: fc.weight, fc.bias; missing from the file: none")


def test_ddp_prefixed_file_loads(tmp_path, capsys):
    source = build_backbone("tiny-cnn")
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "ddp.pt")
    loaded = build_backbone("tiny-cnn", weights=str(tmp_path / "ddp.pt"))
    assert (loaded.weights_report.file_prefix, loaded.weights_report.backbone_prefix) == ("module.", "")
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    count = len(source.state_dict())
    assert f"loaded {count} of {count} tensors" in capsys.readouterr().err


def test_lightning_checkpoint_loads(tmp_path, capsys, torchvision_resnet18):
    checkpoint = {"epoch": 3, "global_step": 120, "state_dict": {f"model.{k}": v for k, v in torchvision_resnet18.items()}}
    torch.save(checkpoint, tmp_path / "last.ckpt")
    backbone = build_backbone("resnet18", pretrained=False, in_channels=1, weights=str(tmp_path / "last.ckpt"))
    report = backbone.weights_report
    assert (report.file_prefix, report.backbone_prefix, report.loaded) == ("model.", "body.", 120)
    assert report.adapted == ["body.conv1.weight"]  # RGB filters summed for the grey-scale stem
    assert torch.allclose(backbone.body.conv1.weight, torchvision_resnet18["conv1.weight"].sum(1, keepdim=True))
    err = capsys.readouterr().err
    assert "(file prefix 'model.' -> 'body.')" in err and "input channels adapted" in err and "body.conv1.weight" in err


def test_input_channels_are_adapted_both_ways_so_a_grey_picture_gives_the_same_response():
    from crossfuse.backbones.weights import adapt_input_channels

    rgb = torch.randn(8, 3, 3, 3)
    grey = adapt_input_channels(rgb, torch.Size([8, 1, 3, 3]))
    picture = torch.rand(1, 1, 6, 6)
    conv = torch.nn.functional.conv2d
    assert torch.allclose(conv(picture, grey), conv(picture.expand(1, 3, 6, 6), rgb), atol=1e-5)
    back = adapt_input_channels(grey, torch.Size([8, 3, 3, 3]))
    assert back.shape == (8, 3, 3, 3) and torch.allclose(conv(picture.expand(1, 3, 6, 6), back), conv(picture, grey),
                                                         atol=1e-5)
    assert adapt_input_channels(rgb, torch.Size([4, 1, 3, 3])) is None  # other output channels: not adaptable
    assert adapt_input_channels(torch.randn(8, 2, 3, 3), torch.Size([8, 1, 3, 3])) is None


def test_a_grey_backbones_weights_load_into_an_rgb_one(tmp_path, capsys):
    from safetensors.torch import save_file

    grey = build_backbone("tiny-cnn", in_channels=1)
    save_file(grey.state_dict(), str(tmp_path / "grey.safetensors"))
    rgb = build_backbone("tiny-cnn", in_channels=3, weights=str(tmp_path / "grey.safetensors"))
    report = rgb.weights_report
    assert report.loaded == len(grey.state_dict()) and len(report.adapted) == 1
    name = report.adapted[0]
    assert torch.allclose(rgb.state_dict()[name], grey.state_dict()[name].repeat(1, 3, 1, 1) / 3)


def test_sequence_classifier_state_dict_loads_into_the_text_backbone(tmp_path, capsys):
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForSequenceClassification

    backbone = build_backbone("tiny-bert")
    config = BertConfig(vocab_size=backbone.tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128, max_position_embeddings=512, num_labels=3)
    classifier = BertForSequenceClassification(config)
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(tmp_path / "clf.safetensors"))
    loaded = build_backbone("tiny-bert", weights=str(tmp_path / "clf.safetensors"))
    report = loaded.weights_report
    assert (report.file_prefix, report.backbone_prefix) == ("bert.", "model.")
    assert set(report.not_in_backbone) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias",
                                           "classifier.weight", "classifier.bias"}
    assert report.missing == []
    assert torch.equal(loaded.model.embeddings.word_embeddings.weight, classifier.bert.embeddings.word_embeddings.weight)
    err = capsys.readouterr().err  # safetensors files list their tensors by name
    assert "(file prefix 'bert.' -> 'model.'); not in the backbone: bert.pooler.dense.bias, bert.pooler.dense.weight, " \
        "classifier.bias, classifier.weight; missing from the file: none" in err


def test_shape_mismatches_are_listed_apart(tmp_path, capsys):
    state = build_backbone("tiny-cnn").state_dict()
    state["body.0.weight"] = torch.zeros(16, 3, 5, 5)
    torch.save({"model": state}, tmp_path / "w.pt")
    report = build_backbone("tiny-cnn", weights=str(tmp_path / "w.pt")).weights_report
    assert report.loaded == report.total - 1 and report.missing == ["body.0.weight"]
    assert report.mismatched == ["body.0.weight: file [16, 3, 5, 5] vs backbone [16, 3, 3, 3]"]
    assert "shape mismatch: body.0.weight" in capsys.readouterr().err


def test_long_lists_are_cut_in_the_report_line():
    report = WeightsReport(file="w.pt", loaded=1, total=8, not_in_backbone=[f"x{i}" for i in range(7)])
    assert "not in the backbone: x0, x1, x2, x3 and 3 more;" in report.summary()


def test_pickled_objects_are_refused_by_weights_only_loading(tmp_path):
    torch.save({"state_dict": build_backbone("tiny-cnn").body}, tmp_path / "module.pt")  # a whole nn.Module
    with pytest.raises(CrossfuseError, match="not a plain state dict"):
        build_backbone("tiny-cnn", weights=str(tmp_path / "module.pt"))
