"""Z-score normalisation of each sample and channel (mean 0, standard deviation 1).

torchio's ``ZNormalization()`` (PCRLv2), computed over all voxels of an image with the unbiased
standard deviation. A constant image (standard deviation below ``eps``) is only centred.
Deterministic; the class takes a generator only to fit the batched-transform signature.

Example:
    >>> import torch
    >>> y = z_normalise(torch.rand(2, 3, 8, 8, 8) * 5 + 2)
    >>> round(float(y.mean()), 4) + 0.0, round(float(y[0, 1].std()), 4)
    (0.0, 1.0)
"""

from __future__ import annotations

import torch

from radiossl.transforms._random import check_batch


def z_normalise(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / std`` per sample and channel."""
    check_batch(x, "z_normalise")
    flat = x.flatten(2)
    mean = flat.mean(dim=2).view(*x.shape[:2], 1, 1, 1)
    std = flat.std(dim=2).view(*x.shape[:2], 1, 1, 1) if flat.shape[2] > 1 else torch.zeros_like(mean)
    return (x - mean) / torch.where(std > eps, std, torch.ones_like(std))


class ZNormalise:
    """Per-sample, per-channel z-score (always applied)."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return z_normalise(x, self.eps)

    def __repr__(self) -> str:
        return "ZNormalise()"
