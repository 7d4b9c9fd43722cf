"""Reconstruction loss on the masked voxels only (masked image modelling: MAE, SparK).

``masked_reconstruction_loss(prediction, target, mask)`` is the mean over the hidden voxels (and
channels) of ``(prediction - target)²`` (``kind="l2"``, nnssl's ``MAEMSELoss``) or
``|prediction - target|`` (``kind="l1"``, nnssl's ``MAEL1Loss``). Visible voxels do not enter it at
all; ``mask`` is a block mask of :mod:`radiossl.ops.block_mask` (``True`` = hidden) on any grid that
divides the volume. Nothing hidden gives 0.

Example:
    >>> import torch
    >>> target = torch.zeros(1, 1, 4, 4, 4)
    >>> mask = torch.zeros(1, 1, 2, 2, 2, dtype=torch.bool)
    >>> mask[0, 0, 0, 0, 0] = True                      # one 2x2x2 block hidden
    >>> prediction = target.clone()
    >>> prediction[..., 2:, 2:, 2:] = 5.0               # error in a visible block only
    >>> float(masked_reconstruction_loss(prediction, target, mask))
    0.0
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from radiossl.ops.block_mask import visible_at


def masked_reconstruction_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    kind: Literal["l2", "l1"] = "l2",
) -> torch.Tensor:
    """Mean L2 (or L1) error over the hidden voxels, float32 (see the module docstring)."""
    if prediction.shape != target.shape:
        raise ValueError(f"shape mismatch: prediction {tuple(prediction.shape)}, target {tuple(target.shape)}")
    if kind not in ("l2", "l1"):
        raise ValueError(f"kind must be 'l2' or 'l1', got {kind!r}")
    hidden = (visible_at(mask, prediction.shape[2:]) == 0).expand(prediction.shape)
    error = prediction.float() - target.float()
    per_voxel = error.square() if kind == "l2" else error.abs()
    # where, not a product: a non-finite value at a visible voxel must not reach the loss
    total = torch.where(hidden, per_voxel, torch.zeros_like(per_voxel)).sum()
    return total / hidden.sum().clamp_min(1)


class MaskedReconstructionLoss(nn.Module):
    """Module form of :func:`masked_reconstruction_loss`."""

    def __init__(self, kind: Literal["l2", "l1"] = "l2") -> None:
        super().__init__()
        self.kind: Literal["l2", "l1"] = kind

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_reconstruction_loss(prediction, target, mask, self.kind)
