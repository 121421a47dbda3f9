"""Hugging Face sources: a folder's config decides text / image / audio; transforms match the processors;
save_architecture rebuilds the same network offline; missing Hub models fail fast with the `hf download` hint."""

from __future__ import annotations

import time

import pytest
import torch

from crossfuse.backbones import build_backbone, resolve_source, source_modality
from crossfuse.errors import CrossfuseError
from crossfuse.testing import write_tiny_audio_backbone, write_tiny_image_backbone, write_tiny_text_backbone


def _write_convnext(directory):
    from transformers import ConvNextConfig, ConvNextImageProcessor, ConvNextModel

    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875).save_pretrained(str(directory))
    ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)).save_pretrained(str(directory))
    return directory


def _write_dinov2(directory):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}).save_pretrained(str(directory))
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             mlp_ratio=2)).save_pretrained(str(directory))
    return directory


def _write_whisper(directory):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    # 50 encoder positions = 100 mel frames = a 1-second window (the released models: 1500, 30 s).
    WhisperFeatureExtractor(feature_size=16, chunk_length=1).save_pretrained(str(directory))
    config = WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=50,
                           max_target_positions=16, vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                           decoder_start_token_id=1)
    WhisperModel(config).save_pretrained(str(directory))
    return directory


def _write_wav2vec2_group_norm(directory):
    """wav2vec2-base's layout: GroupNorm front end, no attention mask from the feature extractor."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(str(directory))
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 conv_dim=(16, 16), conv_stride=(5, 64), conv_kernel=(10, 64),
                                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                                 feat_extract_norm="group")).save_pretrained(str(directory))
    return directory


WRITERS = {"vit": write_tiny_image_backbone, "convnext": _write_convnext, "dinov2": _write_dinov2,
           "wav2vec2": write_tiny_audio_backbone, "whisper": _write_whisper,
           "wav2vec2-group": _write_wav2vec2_group_norm}
MODALITY = {"vit": "image", "convnext": "image", "dinov2": "image", "wav2vec2": "audio", "whisper": "audio",
            "wav2vec2-group": "audio"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {name: write(root / name) for name, write in WRITERS.items()}


def _inputs(backbone):
    torch.manual_seed(0)
    if backbone.modality == "image":
        images = [torch.randint(0, 256, (3, 40, 52), dtype=torch.uint8) for _ in range(2)]
        return (torch.stack([backbone.transform(image) for image in images]),)
    batch = backbone.featurize([torch.randn(6000), torch.randn(3000)])
    return batch["waveforms"], batch["lengths"]


@pytest.mark.parametrize("name", list(WRITERS))
def test_folder_builds_its_modality_and_pools_to_feature_dim(folders, name):
    assert source_modality(str(folders[name])) == MODALITY[name]
    backbone = build_backbone(str(folders[name])).eval()
    assert backbone.modality == MODALITY[name]
    with torch.no_grad():
        features = backbone(*_inputs(backbone))
    assert features.shape == (2, backbone.feature_dim)


@pytest.mark.parametrize("name", ["vit", "convnext", "dinov2"])
def test_image_transform_gives_what_the_processor_gives(folders, name):
    backbone = build_backbone(str(folders[name]), pretrained=False)
    image = torch.randint(0, 256, (3, 45, 60), dtype=torch.uint8)
    expected = backbone.processor(images=image, return_tensors="pt")["pixel_values"][0]
    ours = backbone.transform(image)
    assert ours.shape == expected.shape == (3, 32, 32)
    assert torch.allclose(ours, expected, atol=1e-4)
    grey = backbone.transform(torch.randint(0, 256, (1, 45, 60), dtype=torch.uint8))
    assert grey.shape == (3, 32, 32)  # grey pictures are made RGB for an RGB model


@pytest.mark.parametrize("name", list(WRITERS))
def test_save_architecture_rebuilds_the_same_network_offline(folders, name, tmp_path):
    original = build_backbone(str(folders[name])).eval()
    original.save_architecture(tmp_path / "arch")
    assert not list((tmp_path / "arch").glob("*.safetensors"))  # architecture only, no weights
    rebuilt = build_backbone(str(tmp_path / "arch"), pretrained=False).eval()
    assert type(rebuilt) is type(original)
    rebuilt.load_state_dict(original.state_dict())
    inputs = _inputs(original)
    with torch.no_grad():
        assert torch.allclose(original(*inputs), rebuilt(*inputs), atol=1e-5)


@pytest.mark.parametrize("name", ["wav2vec2", "wav2vec2-group", "whisper"])
def test_audio_padding_does_not_change_a_clip(folders, name):
    backbone = build_backbone(str(folders[name])).eval()
    torch.manual_seed(1)
    clips = [torch.randn(7000), torch.randn(2500)]
    with torch.no_grad():
        batch = backbone(**backbone.featurize(clips))
        alone = backbone(**backbone.featurize(clips[1:]))
    assert torch.allclose(batch[1], alone[0], atol=1e-4)


def test_whisper_frontend_matches_its_feature_extractor(folders):
    backbone = build_backbone(str(folders["whisper"]))
    assert backbone.features_kind == "spectrogram"
    clip = torch.randn(5000)
    expected = backbone.extractor(clip.numpy(), sampling_rate=16_000, return_tensors="pt")["input_features"]
    features, frames = backbone.frontend(*backbone.featurize([clip]).values())
    assert features.shape == expected.shape == (1, 16, 100)
    assert torch.allclose(features, expected, atol=1e-4)
    assert frames.tolist() == [32]  # ceil(5000 / 160) frames hold audio


def test_wav2vec2_frontend_normalises_each_clip_over_its_own_samples(folders):
    backbone = build_backbone(str(folders["wav2vec2"]))
    assert backbone.features_kind == "waveform" and backbone.sample_rate == 16_000
    batch = backbone.featurize([3 + 2 * torch.randn(4000), torch.randn(1000)])
    features, lengths = backbone.frontend(batch["waveforms"], batch["lengths"])
    assert lengths.tolist() == [4000, 1000]
    assert abs(features[0].mean().item()) < 1e-4 and abs(features[0].std().item() - 1) < 1e-2
    assert torch.all(features[1, 1000:] == 0)


def test_text_folder_is_still_a_text_backbone(tmp_path):
    directory = write_tiny_text_backbone(tmp_path / "text")
    assert source_modality(str(directory)) == "text"
    assert build_backbone(str(directory)).modality == "text"


def test_hub_model_not_cached_fails_fast_with_the_hf_download_hint():
    assert source_modality("hf:an-org/a-model-nobody-cached") is None
    started = time.time()
    with pytest.raises(CrossfuseError, match="hf download an-org/a-model-nobody-cached --local-dir DIR"):
        build_backbone("hf:an-org/a-model-nobody-cached")
    assert time.time() - started < 5


def test_source_prefixes_and_modalities_of_registry_and_timm_names():
    assert resolve_source("timm:convnext_tiny") == ("timm", "convnext_tiny")
    assert source_modality("timm:convnext_tiny") == "image"
    assert source_modality("mel-cnn") == "audio" and source_modality("tiny-bert") == "text"
    with pytest.raises(CrossfuseError, match="needs a model name"):
        resolve_source("timm:")


def test_hub_model_cached_without_its_files_fails_fast(monkeypatch, tmp_path):
    import huggingface_hub.constants
    from transformers import ViTConfig

    snapshot = tmp_path / "models--an-org--vit" / "snapshots" / "0123abcd"
    ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=64).save_pretrained(str(snapshot))
    (tmp_path / "models--an-org--vit" / "refs").mkdir()
    (tmp_path / "models--an-org--vit" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert source_modality("hf:an-org/vit") == "image"  # known from the cached config alone
    started = time.time()
    with pytest.raises(CrossfuseError, match="hf download an-org/vit --local-dir DIR"):
        build_backbone("hf:an-org/vit")  # no processor, no weights in the cache
    assert time.time() - started < 5


def test_backbone_layers_keeps_the_first_layers_with_their_pretrained_weights(tmp_path):
    import torch

    from crossfuse.backbones import build_backbone
    from crossfuse.testing import write_tiny_text_backbone

    folder = write_tiny_text_backbone(tmp_path / "bert")  # 2 layers
    whole = build_backbone({"name": str(folder)})
    first = build_backbone({"name": str(folder), "layers": 1})
    assert len(first.model.encoder.layer) == 1 and len(whole.model.encoder.layer) == 2
    kept = first.model.state_dict()
    for key, value in kept.items():
        assert torch.equal(value, whole.model.state_dict()[key]), key


@pytest.mark.parametrize("name, layers, message", [
    ("tiny-cnn", 1, "is not a Hugging Face transformer backbone"),
    (None, 3, "backbone.layers must be between 1 and 2"),
])
def test_backbone_layers_out_of_reach_are_refused(tmp_path, name, layers, message):
    from crossfuse.backbones import build_backbone
    from crossfuse.errors import ConfigError
    from crossfuse.testing import write_tiny_text_backbone

    name = name or str(write_tiny_text_backbone(tmp_path / "bert"))
    with pytest.raises(ConfigError, match=message):
        build_backbone({"name": name, "layers": layers})
