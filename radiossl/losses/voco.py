"""The VoCo loss (volume contrast; Wu, Zhuang and Chen, CVPR 2024).

Per volume, ``K`` base crops tile a grid and ``M`` random crops of the same size overlap some of them;
``y[m, k]`` is the fraction of crop ``m`` inside base ``k`` (:func:`radiossl.ops.crop_grid.overlap_fractions`).
With ``p`` the projected embeddings:

* prediction ``ŷ[m, k] = relu(cos(p_crop[m], sg(p_base[k])))`` (:func:`voco_logits`; the bases get no
  gradient through it, as in the authors' ``online_assign(feats, bases.detach())``);
* prediction loss ``L_pred = L_pos + L_neg`` (:func:`voco_prediction_loss`) with
  ``L_pos = Σ w·(-log(1 - |y - ŷ| + 1e-6)) / Σ w`` over the overlapping pairs and
  ``L_neg = mean of ŷ²`` over the non-overlapping pairs; ``w = y`` (``positive_weight="overlap"``,
  the authors' released ``models/voco_head.py`` and nnssl's ``VoCoLoss``) or ``w = 1``
  (``"uniform"``, the first version of the authors' code as kept in nnssl's ``original_code.py``);
* regularisation ``L_reg = mean over base pairs i < j of relu(cos(p_base[i], sg(p_base[j])))²``
  (:func:`voco_regularisation`; the authors' ``regularization_loss``): different base crops are pushed
  towards orthogonal embeddings.

Each term is computed per volume and averaged over the volumes of the batch (the authors' loop over
the batch); :func:`voco_loss` returns ``L_pred + reg_weight · L_reg`` and its parts.

Example:
    >>> import torch
    >>> bases = torch.eye(4)
    >>> crops = torch.tensor([[1.0, 0.0, 0.0, 0.0]])          # the same direction as base 0
    >>> y = torch.tensor([[1.0, 0.0, 0.0, 0.0]])              # and entirely inside it
    >>> parts = voco_loss(crops[None], bases[None], y[None])
    >>> all(abs(float(v)) < 1e-5 for v in parts)              # a perfect prediction, orthogonal bases
    True
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6
"""Added inside the logarithm of the positive term, as in the authors' ``ce_loss``."""


class VoCoLossParts(NamedTuple):
    """The total loss and its two terms (float32 scalars)."""

    total: torch.Tensor
    prediction: torch.Tensor
    regularisation: torch.Tensor


def _cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[B, M, K]`` cosine similarities of ``a [B, M, D]`` and ``b [B, K, D]``."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).transpose(-1, -2)


def voco_logits(crop_embeddings: torch.Tensor, base_embeddings: torch.Tensor) -> torch.Tensor:
    """``relu(cos(crop, sg(base)))`` as ``[B, M, K]`` from ``[B, M, D]`` and ``[B, K, D]``."""
    return F.relu(_cosine_matrix(crop_embeddings, base_embeddings.detach()))


def _per_volume_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per volume ``Σ weight·values / Σ weight`` (0 where the weights sum to 0), averaged over volumes."""
    numerator = (values * weight).flatten(1).sum(1)
    denominator = weight.flatten(1).sum(1)
    return torch.where(denominator > 0, numerator / denominator.clamp_min(EPS), torch.zeros_like(numerator)).mean()


def voco_prediction_loss(
    logits: torch.Tensor, overlaps: torch.Tensor, positive_weight: Literal["overlap", "uniform"] = "overlap"
) -> torch.Tensor:
    """``L_pos + L_neg`` of predicted ``logits`` against target ``overlaps`` (both ``[B, M, K]``)."""
    if logits.shape != overlaps.shape or logits.dim() != 3:
        raise ValueError(
            f"expected logits and overlaps [B, M, K], got {tuple(logits.shape)} and {tuple(overlaps.shape)}"
        )
    if positive_weight not in ("overlap", "uniform"):
        raise ValueError(f"positive_weight must be 'overlap' or 'uniform', got {positive_weight!r}")
    y = overlaps.float()
    p = logits.float()
    positive = y > 0
    weight = y if positive_weight == "overlap" else positive.float()
    positive_terms = -torch.log(1.0 - (y - p).abs() + EPS)
    positive_loss = _per_volume_mean(torch.where(positive, positive_terms, torch.zeros_like(p)), weight)
    negative_loss = _per_volume_mean(p.square(), (~positive).float())
    return positive_loss + negative_loss


def voco_regularisation(base_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean over base pairs ``i < j`` of ``relu(cos(b_i, sg(b_j)))²``, per volume, averaged (``[B, K, D]``)."""
    if base_embeddings.dim() != 3 or base_embeddings.shape[1] < 2:
        raise ValueError(f"expected [B, K, D] base embeddings with K >= 2, got {tuple(base_embeddings.shape)}")
    similarity = F.relu(_cosine_matrix(base_embeddings, base_embeddings.detach())).square()
    k = base_embeddings.shape[1]
    upper = torch.ones(k, k, dtype=torch.bool, device=base_embeddings.device).triu(diagonal=1)
    return similarity[:, upper].mean(1).mean()


def voco_loss(
    crop_embeddings: torch.Tensor,
    base_embeddings: torch.Tensor,
    overlaps: torch.Tensor,
    positive_weight: Literal["overlap", "uniform"] = "overlap",
    reg_weight: float = 1.0,
) -> VoCoLossParts:
    """VoCo's loss ``L_pred + reg_weight · L_reg`` and its parts (see the module docstring)."""
    prediction = voco_prediction_loss(voco_logits(crop_embeddings, base_embeddings), overlaps, positive_weight)
    regularisation = voco_regularisation(base_embeddings)
    return VoCoLossParts(prediction + reg_weight * regularisation, prediction, regularisation)


class VoCoLoss(nn.Module):
    """Module form of :func:`voco_loss` (returns the total)."""

    def __init__(self, positive_weight: Literal["overlap", "uniform"] = "overlap", reg_weight: float = 1.0) -> None:
        super().__init__()
        self.positive_weight: Literal["overlap", "uniform"] = positive_weight
        self.reg_weight = reg_weight

    def forward(
        self, crop_embeddings: torch.Tensor, base_embeddings: torch.Tensor, overlaps: torch.Tensor
    ) -> torch.Tensor:
        return voco_loss(crop_embeddings, base_embeddings, overlaps, self.positive_weight, self.reg_weight).total
