"""Random gamma correction, ``sign(I)·|I|^γ`` with a per-sample γ.

torchio's ``RandomGamma()`` (PCRLv2): ``log γ ~ U(-0.3, 0.3)``. Noise added before it can make
intensities negative; like current torchio, the power is applied to the magnitude and the sign
kept, so the map stays odd and monotone.

Example:
    >>> import torch
    >>> x = torch.tensor([-4.0, 0.0, 4.0]).view(1, 1, 3, 1, 1)
    >>> gamma_transform(x, torch.tensor([0.5])).flatten().tolist()
    [-2.0, 0.0, 2.0]
"""

from __future__ import annotations

import torch

from radiossl.transforms._random import check_batch, uniform
from radiossl.transforms.compose import random_apply


def gamma_transform(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``sign(x)·|x|^gamma[b]`` for each sample ``b``."""
    check_batch(x, "gamma_transform")
    if gamma.shape != (x.shape[0],):
        raise ValueError(f"gamma must have shape [B], got {tuple(gamma.shape)}")
    power = gamma.to(x.device, x.dtype).view(-1, 1, 1, 1, 1)
    return torch.sign(x) * x.abs().pow(power)


class RandomGamma:
    """Gamma correction, ``log γ ~ U(log_gamma)``; per sample with probability ``p`` (torchio: ±0.3, 1)."""

    def __init__(self, log_gamma: tuple[float, float] = (-0.3, 0.3), p: float = 1.0) -> None:
        if log_gamma[0] > log_gamma[1]:
            raise ValueError(f"log_gamma must be a range (low <= high), got {log_gamma}")
        self.log_gamma = log_gamma
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(x, "RandomGamma")
        return random_apply(x, self.p, generator, lambda sub: self._apply(sub, generator))

    def _apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        log_gamma = uniform((x.shape[0],), self.log_gamma[0], self.log_gamma[1], generator, x.device)
        return gamma_transform(x, log_gamma.exp())

    def __repr__(self) -> str:
        return f"RandomGamma(log_gamma={self.log_gamma}, p={self.p:g})"
