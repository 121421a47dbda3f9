"""The BC-ResNet keyword-spotting backbone: interface, size, and padding invariance."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from crossfuse_smarthome.kws import BC_RESNET_WIDTHS, BCResNet, bc_resnet_builder, parameter_count


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return BCResNet(tau=1).eval()


def test_it_follows_the_audio_backbone_interface(net):
    clips = [torch.randn(12000) * 0.1, torch.randn(16000) * 0.1]
    batch = net.featurize(clips)
    assert batch["waveforms"].shape == (2, 16000) and batch["lengths"].tolist() == [12000, 16000]
    assert float(batch["waveforms"][0, 12000:].abs().sum()) == 0
    features, frames = net.frontend(**batch)
    assert features.shape == (2, 40, 101) and frames.tolist() == [76, 101]  # 10 ms hop, centred frames
    with torch.no_grad():
        assert net.encode(features, frames).shape == (2, net.feature_dim) == (2, 32)
        assert net(batch["waveforms"], batch["lengths"]).shape == (2, 32)
    assert (net.modality, net.features_kind, net.sample_rate) == ("audio", "spectrogram", 16000)


def test_every_size_stays_well_under_a_million_parameters():
    counts = {name: parameter_count(BCResNet(tau)) for name, tau in BC_RESNET_WIDTHS.items()}
    assert counts["bc-resnet-1"] < 10_000 < counts["bc-resnet-3"] < 60_000
    assert max(counts.values()) == counts["bc-resnet-8"] < 400_000


def test_a_clip_padded_into_a_batch_gets_the_features_it_gets_alone(net):
    torch.manual_seed(1)
    short, long = torch.randn(9000) * 0.1, torch.randn(16000) * 0.1
    with torch.no_grad():
        alone = net(short[None])
        batched = net(**net.featurize([short, long]))
    assert torch.allclose(batched[0], alone[0], atol=1e-5)


def test_it_trains_every_parameter():
    torch.manual_seed(0)
    model = BCResNet(tau=1).train()
    loss = model(torch.randn(4, 16000) * 0.1).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_builder_takes_the_sample_rate_from_the_backbone_config():
    built = bc_resnet_builder(1)(SimpleNamespace(sample_rate=8000, pretrained=False))
    features, frames = built.frontend(torch.zeros(1, 8000))
    assert built.sample_rate == 8000 and features.shape == (1, 40, 101)
