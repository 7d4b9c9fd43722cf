"""The VoCo loss against a pair-by-pair transcription of the authors' definitions, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from radiossl.losses.voco import VoCoLoss, voco_logits, voco_loss, voco_prediction_loss, voco_regularisation


def reference(crops: torch.Tensor, bases: torch.Tensor, labels: torch.Tensor, weight: str) -> torch.Tensor:
    """One volume at a time, one pair at a time: ``online_assign``, ``ce_loss``, ``regularization_loss``."""
    total = torch.zeros(())
    for volume in range(crops.shape[0]):
        logits = torch.stack(
            [
                torch.stack([F.relu(F.cosine_similarity(c, b.detach(), dim=0)) for b in bases[volume]])
                for c in crops[volume]
            ]
        )
        y = labels[volume]
        w = y if weight == "overlap" else (y > 0).float()
        positive = (-w * torch.log(1 - (y - logits).abs() + 1e-6)).sum() / w.sum()
        negative_mask = (y == 0).float()
        negative = (negative_mask * logits**2).sum() / negative_mask.sum() if negative_mask.sum() > 0 else 0.0
        pairs = [
            F.relu(F.cosine_similarity(bases[volume, i], bases[volume, j].detach(), dim=0)) ** 2
            for i in range(bases.shape[1])
            for j in range(i + 1, bases.shape[1])
        ]
        total = total + positive + negative + torch.stack(pairs).mean()
    return total / crops.shape[0]


@pytest.mark.parametrize("weight", ["overlap", "uniform"])
def test_matches_the_reference_in_value_and_gradient(weight: str) -> None:
    generator = torch.Generator().manual_seed(0)
    crops = torch.randn(2, 3, 6, generator=generator)
    bases = torch.randn(2, 4, 6, generator=generator)
    labels = torch.tensor(
        [
            [[0.25, 0.25, 0.25, 0.25], [1.0, 0, 0, 0], [0.5, 0, 0.5, 0]],
            [[0, 0.75, 0, 0.25], [0, 0, 1.0, 0], [0.1, 0.9, 0, 0]],
        ]
    )
    ours = (crops.clone().requires_grad_(), bases.clone().requires_grad_())
    theirs = (crops.clone().requires_grad_(), bases.clone().requires_grad_())
    loss = voco_loss(*ours, labels, positive_weight=weight)  # type: ignore[arg-type]
    expected = reference(*theirs, labels, weight)
    assert float(loss.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    loss.total.backward()
    expected.backward()
    for mine, reference_tensor in zip(ours, theirs, strict=True):
        assert mine.grad is not None and reference_tensor.grad is not None
        assert torch.allclose(mine.grad, reference_tensor.grad, atol=1e-6)
    assert float(VoCoLoss(weight)(crops, bases, labels)) == pytest.approx(float(loss.total.detach()))  # type: ignore[arg-type]


def test_the_prediction_sends_no_gradient_into_the_bases() -> None:
    crops, bases = torch.randn(1, 2, 5, requires_grad=True), torch.randn(1, 3, 5, requires_grad=True)
    voco_prediction_loss(voco_logits(crops, bases), torch.tensor([[[1.0, 0, 0], [0.5, 0.5, 0]]])).backward()
    assert bases.grad is None and crops.grad is not None


def test_perfect_predictions_and_orthogonal_bases_cost_nothing() -> None:
    bases = torch.eye(4).unsqueeze(0)
    crops = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])  # half in base 0, half in base 1 would need cos 0.5 each
    labels = torch.tensor([[[1 / 2**0.5, 1 / 2**0.5, 0.0, 0.0]]])
    parts = voco_loss(crops, bases, labels)
    assert abs(float(parts.total)) < 1e-5 and float(voco_regularisation(bases)) == 0.0
    assert float(voco_regularisation(torch.ones(1, 3, 4))) == pytest.approx(1.0)  # identical bases: cos 1


def test_bad_shapes_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"\[B, M, K\]"):
        voco_prediction_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="K >= 2"):
        voco_regularisation(torch.zeros(1, 1, 4))
