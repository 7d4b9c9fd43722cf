"""Dice + BCE loss on logits: a hand-written reference, float32 under autocast, the legacy option."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from radiossl.downstream.losses import DiceBCELoss, soft_dice_per_sample


def reference(logits: torch.Tensor, target: torch.Tensor, bce_weight: float, double_sigmoid: bool) -> torch.Tensor:
    """Loop-based reference: per region 1 - mean_b soft Dice + w * BCE, summed over regions."""
    total = torch.zeros((), dtype=torch.float64)
    for r in range(logits.shape[1]):
        z = logits[:, r].double()
        t = target[:, r].double()
        p = torch.sigmoid(z)
        dices = []
        for b in range(z.shape[0]):
            inter = (p[b] * t[b]).sum()
            dices.append((2 * inter + 1e-5) / (p[b].sum() + t[b].sum() + 1e-5))
        dice_loss = 1 - torch.stack(dices).mean()
        bce_in = p if double_sigmoid else z
        bce = torch.mean(torch.clamp(bce_in, min=0) - bce_in * t + torch.log1p(torch.exp(-bce_in.abs())))
        total = total + dice_loss + bce_weight * bce
    return total


@pytest.mark.parametrize("double_sigmoid", [False, True])
def test_matches_reference(double_sigmoid: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 5, 4, generator=gen) * 3
    target = (torch.rand(2, 3, 6, 5, 4, generator=gen) > 0.6).float()
    loss = DiceBCELoss(bce_weight=0.2, legacy_double_sigmoid=double_sigmoid)(logits, target)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(reference(logits, target, 0.2, double_sigmoid)), rel=1e-5)


def test_terms_mean_reduction_and_soft_dice() -> None:
    logits = torch.zeros(1, 2, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2, 2)
    terms = DiceBCELoss(bce_weight=1.0, reduction="mean").terms(logits, target)
    # p = 0.5 everywhere: Dice = 2*4/(4+8) = 2/3, BCE = log 2 per region.
    assert terms.dice == pytest.approx(1 / 3, rel=1e-4)
    assert terms.bce == pytest.approx(float(torch.log(torch.tensor(2.0))), rel=1e-5)
    assert float(terms.loss) == pytest.approx(terms.dice + terms.bce, rel=1e-5)
    assert soft_dice_per_sample(torch.ones(3, 4), torch.ones(3, 4)).tolist() == pytest.approx([1.0] * 3)


def test_float32_under_bf16_autocast_and_gradients_flow() -> None:
    conv = torch.nn.Conv3d(1, 2, 1)
    x = torch.randn(2, 1, 4, 4, 4)
    target = (torch.rand(2, 2, 4, 4, 4) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(x)
        loss = DiceBCELoss()(logits, target)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_fixed_bce_is_stronger_than_the_legacy_one() -> None:
    # Confidently wrong logits: the true BCE grows without bound, the double-sigmoid one stays below log(1+e).
    logits = torch.full((1, 1, 2, 2, 2), -20.0)
    target = torch.ones(1, 1, 2, 2, 2)
    fixed = DiceBCELoss(dice_weight=0.0, bce_weight=1.0).terms(logits, target).bce
    legacy = DiceBCELoss(dice_weight=0.0, bce_weight=1.0, legacy_double_sigmoid=True).terms(logits, target).bce
    assert fixed == pytest.approx(20.0, rel=1e-3)
    assert legacy == pytest.approx(float(F.softplus(torch.tensor(0.0)).item()), rel=1e-3)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        DiceBCELoss()(torch.zeros(1, 2, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2))
