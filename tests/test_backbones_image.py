"""Image backbones: grey-scale input (summed RGB filters), timm models, and their preprocessing."""

from __future__ import annotations

import time

import pytest
import torch

from crossfuse.backbones import build_backbone
from crossfuse.errors import CrossfuseError


def test_torchvision_grey_scale_first_conv_is_the_sum_of_the_rgb_filters():
    torch.manual_seed(0)
    rgb = build_backbone("resnet18", pretrained=False, image_size=64)
    torch.manual_seed(0)  # same random init, then adapted
    grey = build_backbone("resnet18", pretrained=False, image_size=64, in_channels=1)
    assert grey.in_channels == 1 and grey.body.conv1.in_channels == 1
    assert torch.allclose(grey.body.conv1.weight, rgb.body.conv1.weight.sum(dim=1, keepdim=True))
    image = torch.randint(0, 256, (3, 80, 100), dtype=torch.uint8)
    tensor = grey.transform(image)
    assert tensor.shape == (1, 64, 64)
    # A grey picture stored as RGB or as one channel gives the same input (torchvision's grey conversion
    # truncates 0.9999 * v to an integer, hence one grey level of tolerance).
    grey_image = image[:1].expand(3, -1, -1)
    assert torch.allclose(grey.transform(grey_image), grey.transform(image[:1]), atol=1.01 / 255 / 0.226)
    assert grey.eval()(tensor.unsqueeze(0)).shape == (1, 512)


def test_tiny_cnn_takes_grey_images():
    backbone = build_backbone("tiny-cnn", in_channels=1).eval()
    tensor = backbone.transform(torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8))
    assert tensor.shape == (1, 64, 64)
    assert backbone(tensor.unsqueeze(0)).shape == (1, 32)


def test_in_channels_other_than_one_or_three_is_refused():
    with pytest.raises(CrossfuseError, match="in_channels must be 1"):
        build_backbone("tiny-cnn", in_channels=4)


def test_resnet18_half_is_torchvision_resnet18_at_half_width():
    import torchvision

    half = build_backbone("resnet18-half", pretrained=False, image_size=64).eval()
    full = {name: t for name, t in torchvision.models.resnet18().state_dict().items() if not name.startswith("fc.")}
    state = half.body.state_dict()
    # torchvision's names, so train_blocks, backbone.weights files and feature-map hooks find its parts.
    assert list(state) == list(full)
    for name, tensor in state.items():
        shape = full[name].shape
        if name == "conv1.weight":  # three colour channels in, 32 filters out
            shape = torch.Size([32, 3, 7, 7])
        elif tensor.dim() == 4:
            shape = torch.Size([shape[0] // 2, shape[1] // 2, *shape[2:]])
        elif tensor.dim() == 1:
            shape = torch.Size([shape[0] // 2])
        assert tensor.shape == shape, name
    ratio = sum(t.numel() for t in state.values()) / sum(t.numel() for t in full.values())
    assert 0.24 < ratio < 0.26
    image = torch.randint(0, 256, (3, 80, 100), dtype=torch.uint8)
    with torch.no_grad():
        assert half(half.transform(image).unsqueeze(0)).shape == (1, half.feature_dim) == (1, 256)


def test_resnet18_half_takes_grey_images_has_blocks_and_refuses_pretrained_weights():
    from crossfuse.backbones.adapt import find_blocks

    grey = build_backbone("resnet18-half", pretrained=False, image_size=48, in_channels=1).eval()
    tensor = grey.transform(torch.randint(0, 256, (3, 60, 50), dtype=torch.uint8))
    assert tensor.shape == (1, 48, 48) and grey.body.conv1.in_channels == 1
    with torch.no_grad():
        assert grey(tensor.unsqueeze(0)).shape == (1, 256)
    assert [block is getattr(grey.body, f"layer{i}") for i, block in enumerate(find_blocks(grey), 1)] == [True] * 4
    with pytest.raises(CrossfuseError, match="no pretrained weights: set backbone.pretrained=false"):
        build_backbone("resnet18-half")


def test_resnet18_half_weights_file_round_trip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    trained = build_backbone("resnet18-half", pretrained=False, image_size=64).eval()
    save_file(trained.body.state_dict(), str(tmp_path / "half.safetensors"))
    torch.manual_seed(1)  # a different random init, then the file's weights
    loaded = build_backbone("resnet18-half", pretrained=False, image_size=64,
                            weights=str(tmp_path / "half.safetensors")).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(images), trained(images))


def test_timm_resnet18_random_init_with_one_channel():
    backbone = build_backbone("timm:resnet18", pretrained=False, in_channels=1, image_size=64).eval()
    assert backbone.modality == "image" and backbone.feature_dim == 512 and backbone.in_channels == 1
    tensor = backbone.transform(torch.randint(0, 256, (3, 90, 70), dtype=torch.uint8))
    assert tensor.shape == (1, 64, 64)
    with torch.no_grad():
        assert backbone(tensor.unsqueeze(0)).shape == (1, 512)


def test_timm_transform_follows_timm_data_config():
    import timm.data

    backbone = build_backbone("timm:resnet18", pretrained=False)
    expected = timm.data.create_transform(**timm.data.resolve_model_data_config(backbone.body))
    from PIL import Image

    image = Image.fromarray(torch.randint(0, 256, (120, 160, 3), dtype=torch.uint8).numpy())
    ours, theirs = backbone.transform(image), expected(image)
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert (ours - theirs).abs().mean() < 0.05  # same steps; PIL and tensor resizing differ by rounding


def test_timm_unknown_name_suggests_close_ones():
    with pytest.raises(CrossfuseError, match="resnet18"):
        build_backbone("timm:resnet1")


def test_timm_pretrained_offline_fails_fast(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    started = time.time()
    with pytest.raises(CrossfuseError, match="backbone.pretrained=false"):
        build_backbone("timm:resnet18", pretrained=True)
    assert time.time() - started < 5


def test_timm_pretrained_weights_come_from_the_hub_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False)  # what the Hub file holds: 1000 classes, RGB
    snapshot = tmp_path / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(snapshot / "model.safetensors"))
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    backbone = build_backbone("timm:resnet18", pretrained=True, in_channels=1)
    assert torch.allclose(backbone.body.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(backbone.body.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
