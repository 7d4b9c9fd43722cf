"""Additive Gaussian noise with a per-sample standard deviation.

torchio's ``RandomNoise()`` (PCRLv2): mean 0, σ ~ U(0, 0.25) per sample, i.i.d. per voxel.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> y = add_gaussian_noise(torch.zeros(2, 1, 32, 32, 32), torch.tensor([0.0, 0.1]), generator_for(0))
    >>> float(y[0].abs().max()), round(float(y[1].std()), 2)
    (0.0, 0.1)
"""

from __future__ import annotations

import torch

from radiossl.transforms._random import check_batch, uniform
from radiossl.transforms.compose import random_apply


def add_gaussian_noise(
    x: torch.Tensor, std: torch.Tensor, generator: torch.Generator, mean: float = 0.0
) -> torch.Tensor:
    """``x + N(mean, std[b]²)`` for each sample ``b``."""
    check_batch(x, "add_gaussian_noise")
    if std.shape != (x.shape[0],):
        raise ValueError(f"std must have shape [B], got {tuple(std.shape)}")
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise * std.to(x.device, x.dtype).view(-1, 1, 1, 1, 1) + mean


class RandomNoise:
    """Gaussian noise with σ ~ U(std), applied per sample with probability ``p`` (torchio: (0, 0.25), 1)."""

    def __init__(self, std: tuple[float, float] = (0.0, 0.25), mean: float = 0.0, p: float = 1.0) -> None:
        if not 0 <= std[0] <= std[1]:
            raise ValueError(f"std must be a range of non-negative values, got {std}")
        self.std = std
        self.mean = mean
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(x, "RandomNoise")
        return random_apply(x, self.p, generator, lambda sub: self._apply(sub, generator))

    def _apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        std = uniform((x.shape[0],), self.std[0], self.std[1], generator, x.device)
        return add_gaussian_noise(x, std, generator, self.mean)

    def __repr__(self) -> str:
        return f"RandomNoise(std={self.std}, mean={self.mean:g}, p={self.p:g})"
