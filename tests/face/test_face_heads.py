"""Margin heads: logits equal the papers' formulas, gradients are right and pull toward the class."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from crossfuse_face.heads import EmbeddingHead, MarginHead

THETA = 0.6  # angle between the embedding and class 0


def _head(loss: str, **kwargs) -> MarginHead:
    head = MarginHead(2, 2, loss=loss, **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))  # norms must not matter
    return head


def _embedding() -> torch.Tensor:
    return 3.0 * torch.tensor([[math.cos(THETA), math.sin(THETA)]], dtype=torch.float64)


def test_arcface_target_logit_is_s_cos_theta_plus_m():
    logits = _head("arcface", scale=64.0)(_embedding(), torch.tensor([0]))
    expected = [64 * math.cos(THETA + 0.5), 64 * math.cos(math.pi / 2 - THETA)]
    assert logits[0].tolist() == pytest.approx(expected)


def test_cosface_target_logit_is_s_times_cos_theta_minus_m():
    logits = _head("cosface", scale=30.0)(_embedding(), torch.tensor([1]))
    angle_to_1 = math.pi / 2 - THETA
    assert logits[0].tolist() == pytest.approx([30 * math.cos(THETA), 30 * (math.cos(angle_to_1) - 0.35)])


@pytest.mark.parametrize("loss", ["arcface", "cosface"])
def test_without_labels_there_is_no_margin(loss):
    logits = _head(loss, scale=10.0)(_embedding())
    assert logits[0].tolist() == pytest.approx([10 * math.cos(THETA), 10 * math.sin(THETA)])


def test_softmax_is_a_plain_linear_layer():
    head = _head("softmax")
    with torch.no_grad():
        head.bias.copy_(torch.tensor([0.5, -1.0], dtype=torch.float64))
    x = _embedding()
    expected = x @ head.weight.T + head.bias
    assert torch.allclose(head(x, torch.tensor([0])), expected) and torch.allclose(head(x), expected)


def test_default_margins_follow_the_papers():
    assert MarginHead(4, 3).margin == 0.5 and MarginHead(4, 3, loss="cosface").margin == 0.35
    with pytest.raises(ValueError, match="arcface, cosface, softmax"):
        MarginHead(4, 3, loss="sphereface")


@pytest.mark.parametrize("loss", ["arcface", "cosface", "softmax"])
def test_gradients_match_finite_differences(loss):
    torch.manual_seed(0)
    head = MarginHead(4, 3, loss=loss, scale=8.0).double()
    labels = torch.tensor([0, 2, 1, 2])
    embeddings = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    weight = head.weight.detach().clone().requires_grad_(True)
    # Inputs far from the ArcFace branch switch (cos = cos(pi - m) = -0.88), where phi is not smooth.
    assert head.cosine(embeddings).min() > -0.8

    def logits(e, w):
        params = {"weight": w} if head.bias is None else {"weight": w, "bias": head.bias}
        return functional_call(head, params, (e, labels))

    assert torch.autograd.gradcheck(logits, (embeddings, weight))


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.acos(float(F.cosine_similarity(a, b, dim=0).clamp(-1, 1)))


@pytest.mark.parametrize("loss", ["arcface", "cosface"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_sgd_step_turns_the_embedding_toward_its_class(loss, seed):
    torch.manual_seed(seed)
    head = MarginHead(8, 5, loss=loss, scale=16.0)
    embedding = torch.nn.Parameter(torch.randn(1, 8))
    label = torch.tensor([3])
    before = _angle(embedding[0].detach(), head.weight[3].detach())
    F.cross_entropy(head(embedding, label), label).backward()
    torch.optim.SGD([embedding, *head.parameters()], lr=0.05).step()
    assert _angle(embedding[0].detach(), head.weight[3].detach()) < before


def test_arcface_fallback_keeps_the_target_logit_decreasing():
    head = MarginHead(2, 2, loss="arcface", margin=0.5)
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    cosine = torch.cos(theta)
    target = head.target_logit(cosine)
    assert (target[1:] <= target[:-1] + 1e-12).all()  # more angle never means a higher logit
    assert (target <= cosine + 1e-12).all()  # the margin only ever penalises
    # At theta = pi - m, cos(theta + m) = -1 meets the fallback cos(theta) - m sin(m): a small step down.
    switch = int(torch.searchsorted(theta, torch.tensor(math.pi - 0.5, dtype=torch.float64)))
    jump = float(target[switch - 1] - target[switch + 1])
    assert 0 < jump < math.cos(0.5) + 0.5 * math.sin(0.5) - 1 + 0.01


def test_embedding_head_shapes_and_no_normalisation():
    torch.manual_seed(0)
    head = EmbeddingHead(16, 8, dropout=0.1)
    out = head(torch.randn(5, 16, 1, 1))
    assert out.shape == (5, 8) and head.linear.bias is None
    assert not torch.allclose(out.norm(dim=1), torch.ones(5))
    head.eval()
    assert head(torch.randn(1, 16)).shape == (1, 8)


@pytest.mark.parametrize("loss", ["arcface", "cosface"])
def test_the_margin_head_stays_in_fp32_under_bf16_autocast(loss):
    torch.manual_seed(0)
    head = MarginHead(16, num_classes=5, loss=loss)
    embeddings, labels = torch.randn(8, 16), torch.arange(8) % 5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = head(embeddings.bfloat16(), labels)
    assert mixed.dtype == torch.float32
    # Only the bf16 rounding of the input remains: far below the margin's own effect.
    assert torch.allclose(mixed, head(embeddings.bfloat16().float(), labels), atol=1e-5)
