"""The finetuning loss: soft Dice + weighted binary cross-entropy on sigmoid region logits.

The network returns logits ``[B, R, X, Y, Z]`` (one channel per region) and the target is the
binary region masks of the same shape. Everything is computed in float32, also when the forward
pass ran under bf16/fp16 autocast.

Per region ``r``: ``dice_r = 1 - mean_b (2 Σ p·t + s) / (Σ p + Σ t + s)`` with ``p = sigmoid(logit)``
and ``s = 1e-5`` (sums over one sample's voxels), ``bce_r = BCE-with-logits(logit, t)`` (mean
over voxels). The loss is ``Σ_r (dice_weight · dice_r + bce_weight · bce_r)`` (``reduction="sum"``,
the thesis' choice for BraTS' three regions) or the mean over regions.

``legacy_double_sigmoid=True`` reproduces the thesis' defect (spec §8 item 13): its BCE received
probabilities as if they were logits, so the BCE term saw ``sigmoid(sigmoid(logit))`` and was
bounded and weak. Only for reproducing published numbers.

Example:
    >>> import torch
    >>> loss_fn = DiceBCELoss()
    >>> logits = torch.full((1, 3, 4, 4, 4), 20.0)
    >>> loss = loss_fn(logits, torch.ones(1, 3, 4, 4, 4))
    >>> round(float(loss), 4)
    0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

SMOOTH = 1e-5


def soft_dice_per_sample(probs: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """Soft Dice of each sample ``[B]`` over all remaining axes of ``probs``/``target`` ``[B, ...]``."""
    p = probs.float().flatten(1)
    t = target.float().flatten(1)
    return (2.0 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)


@dataclass
class LossTerms:
    """The loss and its parts (detached floats, for logging)."""

    loss: torch.Tensor
    dice: float
    bce: float


class DiceBCELoss(nn.Module):
    """Soft Dice + weighted BCE on region logits, in float32 (see the module docstring).

    Args:
        dice_weight: weight of the Dice term.
        bce_weight: weight of the BCE term (thesis: 0.2).
        reduction: ``"sum"`` (thesis) or ``"mean"`` over regions.
        legacy_double_sigmoid: apply the BCE to probabilities as if they were logits (thesis defect).
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        bce_weight: float = 0.2,
        reduction: Literal["sum", "mean"] = "sum",
        legacy_double_sigmoid: bool = False,
    ) -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.dice_weight = float(dice_weight)
        self.bce_weight = float(bce_weight)
        self.reduction = reduction
        self.legacy_double_sigmoid = legacy_double_sigmoid

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> LossTerms:
        """The loss with its Dice and BCE parts (each reduced over regions like the loss)."""
        if logits.shape != target.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            z = logits.float()
            t = target.float()
            probs = torch.sigmoid(z)
            regions = z.shape[1]
            dice_parts = torch.stack([1.0 - soft_dice_per_sample(probs[:, r], t[:, r]).mean() for r in range(regions)])
            bce_input = probs if self.legacy_double_sigmoid else z
            bce_parts = torch.stack(
                [F.binary_cross_entropy_with_logits(bce_input[:, r], t[:, r]) for r in range(regions)]
            )
            reduce = torch.sum if self.reduction == "sum" else torch.mean
            dice_term = reduce(dice_parts)
            bce_term = reduce(bce_parts)
            loss = self.dice_weight * dice_term + self.bce_weight * bce_term
        return LossTerms(loss=loss, dice=float(dice_term.detach()), bce=float(bce_term.detach()))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar float32 loss."""
        return self.terms(logits, target).loss
