"""Random flips of the spatial axes, per sample.

Two samplers, one apply function:

* :func:`sample_flips` — each listed axis flipped independently with probability ``p``
  (torchio's ``RandomFlip()`` as used by PCRLv2: axis X only, ``p = 0.5``);
* :func:`sample_genesis_flips` — Models Genesis: up to ``max_flips`` times, while ``U(0,1) < rate``
  (0.4), flip an axis picked uniformly. The original picked from the first three axes of a
  ``(1, X, Y, Z)`` array, so its "channel" choice was a no-op and Z was never flipped; here the
  axis is picked among the spatial axes only (X, Y, Z by default).

:func:`flip` applies a ``[B, 3]`` boolean mask; flipping twice with the same mask is the identity.

Example:
    >>> import torch
    >>> x = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> mask = torch.tensor([[True, False, True]])
    >>> torch.equal(flip(flip(x, mask), mask), x)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from radiossl.transforms._random import check_batch, leading_successes


def _check_axes(axes: Sequence[int]) -> tuple[int, ...]:
    axes = tuple(int(a) for a in axes)
    if not axes or any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"flip axes must be spatial axes among 0, 1, 2 (X, Y, Z), got {axes}")
    return axes


def flip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip sample ``b`` along spatial axis ``a`` where ``flips[b, a]`` is true."""
    check_batch(x, "flip")
    if flips.shape != (x.shape[0], 3):
        raise ValueError(f"flips must be a [B, 3] mask, got {tuple(flips.shape)} for batch {x.shape[0]}")
    if not bool(flips.any()):
        return x
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    numpy_path = x.device.type == "cpu" and not x.requires_grad and x.dtype != torch.bfloat16
    for sample, row in enumerate(flips.tolist()):
        dims = [1 + axis for axis in range(3) if row[axis]]
        if not dims:
            out[sample].copy_(x[sample])
        elif numpy_path:  # a reversed-stride view copied once (torch has no negative strides)
            np.copyto(out[sample].numpy(), np.flip(x[sample].numpy(), axis=tuple(dims)))
        else:
            out[sample].copy_(x[sample].flip(dims))
    return out


def sample_flips(
    batch: int, axes: Sequence[int], p: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``[B, 3]`` mask: each axis in ``axes`` flipped independently with probability ``p``."""
    axes = _check_axes(axes)
    mask = torch.zeros(batch, 3, dtype=torch.bool, device=device)
    draws = torch.rand(batch, len(axes), generator=generator, device=device) < p
    mask[:, list(axes)] = draws
    return mask


def sample_genesis_flips(
    batch: int,
    generator: torch.Generator,
    device: torch.device,
    rate: float = 0.4,
    max_flips: int = 3,
    axes: Sequence[int] = (0, 1, 2),
) -> torch.Tensor:
    """``[B, 3]`` mask of Models Genesis' repeated flips (parity of how often each axis was picked)."""
    axes = _check_axes(axes)
    attempts = leading_successes((batch, max_flips), rate, generator, device)
    picks = torch.randint(0, len(axes), (batch, max_flips), generator=generator, device=device)
    axis_ids = torch.tensor(axes, device=device)[picks]
    counts = torch.zeros(batch, 3, dtype=torch.long, device=device)
    counts.scatter_add_(1, axis_ids, attempts.long())
    return counts % 2 == 1


class RandomFlip:
    """Flip each of ``axes`` independently with probability ``p`` (default: torchio's X axis, 0.5)."""

    def __init__(self, axes: Sequence[int] = (0,), p: float = 0.5) -> None:
        self.axes = _check_axes(axes)
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(x, "RandomFlip")
        return flip(x, sample_flips(x.shape[0], self.axes, self.p, generator, x.device))

    def __repr__(self) -> str:
        return f"RandomFlip(axes={self.axes}, p={self.p:g})"


class GenesisFlip:
    """Models Genesis' flips: up to ``max_flips`` (3) times, while ``U(0,1) < rate`` (0.4), flip an axis.

    Apply it to the clean batch before corrupting it, so input and target are flipped alike.
    """

    def __init__(self, rate: float = 0.4, max_flips: int = 3, axes: Sequence[int] = (0, 1, 2)) -> None:
        self.rate = rate
        self.max_flips = max_flips
        self.axes = _check_axes(axes)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(x, "GenesisFlip")
        mask = sample_genesis_flips(x.shape[0], generator, x.device, self.rate, self.max_flips, self.axes)
        return flip(x, mask)

    def __repr__(self) -> str:
        return f"GenesisFlip(rate={self.rate:g}, max_flips={self.max_flips}, axes={self.axes})"
