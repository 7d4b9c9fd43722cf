"""Cross-entropy between soft targets and predicted log-probabilities, and SwAV's swapped prediction.

``cross_entropy_soft(q, log_p, dim)`` is ``-Σ_k q_k log p_k`` along the class axis ``dim``,
averaged over every other position (optionally only over masked-in positions). Terms with a zero
target contribute exactly 0 even where ``log p = -inf``, so one-hot targets never produce NaN.

``swapped_prediction_loss(q1, q2, log_p1, log_p2)`` = ``½ [CE(q1, log_p2) + CE(q2, log_p1)]``:
each view's prediction must match the *other* view's target.

Example:
    >>> import torch
    >>> q = torch.tensor([[1.0, 0.0]])
    >>> log_p = torch.log(torch.tensor([[0.5, 0.5]]))
    >>> round(float(cross_entropy_soft(q, log_p)), 4)   # -log 0.5
    0.6931
    >>> round(float(swapped_prediction_loss(q, q, log_p, log_p)), 4)
    0.6931
"""

from __future__ import annotations

import torch
from torch import nn


def safe_log(probs: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``log(max(p, eps))``: finite for probabilities that underflowed to 0."""
    return torch.log(probs.clamp_min(eps))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    weight = mask.to(values.dtype)
    while weight.dim() < values.dim():
        weight = weight.unsqueeze(-1)
    weight = weight.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def cross_entropy_soft(
    target_probs: torch.Tensor,
    log_probs: torch.Tensor,
    dim: int = 1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over positions of ``-Σ_dim target · log_probs``, computed in float32 (or float64).

    Args:
        target_probs: soft or one-hot targets; no gradient is expected through them.
        log_probs: log-probabilities of the prediction (e.g. ``log_softmax(logits, dim)``).
        dim: the class axis.
        mask: optional boolean/0-1 weights broadcast from the leading axes (e.g. ``[B]`` valid
            samples); masked-out positions are excluded from the mean. All masked out -> 0.
    """
    if target_probs.shape != log_probs.shape:
        raise ValueError(f"shape mismatch: targets {tuple(target_probs.shape)}, log-probs {tuple(log_probs.shape)}")
    dtype = torch.float64 if log_probs.dtype == torch.float64 else torch.float32
    target = target_probs.to(dtype)
    log_p = log_probs.to(dtype)
    # 0 · (-inf) must count as 0, not NaN (the thesis' `ce` had no such guard).
    terms = torch.where(target > 0, target * log_p, torch.zeros_like(log_p))
    per_position = -terms.sum(dim=dim)
    return _masked_mean(per_position, mask)


def swapped_prediction_loss(
    target1: torch.Tensor,
    target2: torch.Tensor,
    log_probs1: torch.Tensor,
    log_probs2: torch.Tensor,
    dim: int = 1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``½ [CE(target1, log_probs2) + CE(target2, log_probs1)]`` (see :func:`cross_entropy_soft`)."""
    return 0.5 * (
        cross_entropy_soft(target1, log_probs2, dim, mask) + cross_entropy_soft(target2, log_probs1, dim, mask)
    )


class SoftCrossEntropy(nn.Module):
    """Module form of :func:`cross_entropy_soft`."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(
        self, target_probs: torch.Tensor, log_probs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return cross_entropy_soft(target_probs, log_probs, self.dim, mask)


class SwappedPredictionLoss(nn.Module):
    """Module form of :func:`swapped_prediction_loss`."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(
        self,
        target1: torch.Tensor,
        target2: torch.Tensor,
        log_probs1: torch.Tensor,
        log_probs2: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return swapped_prediction_loss(target1, target2, log_probs1, log_probs2, self.dim, mask)
