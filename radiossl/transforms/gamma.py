"""Random gamma correction, ``sign(I)·|I|^γ`` with a per-sample γ.

torchio's ``RandomGamma()`` (PCRLv2): ``log γ ~ U(-0.3, 0.3)``. Noise added before it can make
intensities negative; like current torchio, the power is applied to the magnitude and the sign
kept, so the map stays odd and monotone.

Example:
    >>> import torch
    >>> gamma_transform(torch.tensor([-4.0, 0.0, 4.0]).view(1, 1, 3, 1, 1), torch.tensor([0.5])).flatten().tolist()
    [-2.0, 0.0, 2.0]
"""

from __future__ import annotations

import torch

from radiossl.transforms._random import check_batch, uniform


def gamma_transform(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``sign(x)·|x|^gamma[b]`` for each sample ``b``."""
    check_batch(x, "gamma_transform")
    if gamma.shape != (x.shape[0],):
        raise ValueError(f"gamma must have shape [B], got {tuple(gamma.shape)}")
    power = gamma.to(x.device, x.dtype).view(-1, 1, 1, 1, 1)
    return torch.sign(x) * x.abs().pow(power)


class RandomGamma:
    """Gamma correction with ``log γ ~ U(log_gamma)`` per sample (torchio default ``(-0.3, 0.3)``)."""

    def __init__(self, log_gamma: tuple[float, float] = (-0.3, 0.3)) -> None:
        if log_gamma[0] > log_gamma[1]:
            raise ValueError(f"log_gamma must be a range (low <= high), got {log_gamma}")
        self.log_gamma = log_gamma

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(x, "RandomGamma")
        log_gamma = uniform((x.shape[0],), self.log_gamma[0], self.log_gamma[1], generator, x.device)
        return gamma_transform(x, log_gamma.exp())

    def __repr__(self) -> str:
        return f"RandomGamma(log_gamma={self.log_gamma})"
