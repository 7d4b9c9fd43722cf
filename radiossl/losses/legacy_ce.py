"""The thesis' cluster losses, kept for ``legacy: true`` runs (spec §6.1).

``legacy_ce(target, prob) = -mean(target · log(prob))`` where the mean runs over **every** element,
the class axis included, so the value is the per-position cross-entropy divided by K. The thesis had
no epsilon (``prob = 0`` gave NaN, spec §8 item 37); here ``log`` is taken of ``max(prob, eps)``,
which leaves every finite thesis value unchanged for ``prob >= eps``.

Example:
    >>> import torch
    >>> t = torch.tensor([[1.0, 0.0]]); p = torch.tensor([[0.5, 0.5]])
    >>> round(float(legacy_ce(t, p)), 4)   # -log(0.5) / 2 classes
    0.3466
    >>> bool(torch.isfinite(legacy_ce(t, torch.tensor([[1.0, 0.0]]))))
    True
"""

from __future__ import annotations

import torch

LEGACY_EPS = 1e-12


def legacy_ce(target: torch.Tensor, prob: torch.Tensor, eps: float = LEGACY_EPS) -> torch.Tensor:
    """``-mean(target · log(max(prob, eps)))`` over all elements, in float32 (float64 stays float64)."""
    if target.shape != prob.shape:
        raise ValueError(f"shape mismatch: targets {tuple(target.shape)}, probabilities {tuple(prob.shape)}")
    dtype = torch.float64 if prob.dtype == torch.float64 else torch.float32
    return -(target.to(dtype) * torch.log(prob.to(dtype).clamp_min(eps))).mean()


def legacy_swav(
    target1: torch.Tensor,
    target2: torch.Tensor,
    prob1: torch.Tensor,
    prob2: torch.Tensor,
    eps: float = LEGACY_EPS,
) -> torch.Tensor:
    """The thesis' ``swav``: ``½ [legacy_ce(target1, prob2) + legacy_ce(target2, prob1)]``."""
    return 0.5 * (legacy_ce(target1, prob2, eps) + legacy_ce(target2, prob1, eps))
