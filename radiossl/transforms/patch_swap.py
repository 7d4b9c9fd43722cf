"""Random swaps of pairs of patches inside each image (context-restoration style corruption).

torchio's ``RandomSwap(patch_size=(8, 4, 4), num_iterations=100)`` as PCRLv2 uses it: 100 times,
draw two patch corners uniformly (the second redrawn while it equals the first; the patches may
otherwise overlap) and exchange the two patches' contents. Corners along an axis of size ``S`` lie
in ``[0, S - p)`` — like torchio, the very last position is never drawn. Swaps run in order, so
later swaps move content that earlier ones placed; all samples of a batch swap in lockstep.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> x = torch.rand(2, 1, 16, 8, 8)
    >>> y = patch_swap(x, (8, 4, 4), 10, generator_for(0))
    >>> bool(torch.isin(y, x).all()), bool((y != x).any())
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from radiossl.transforms._random import check_batch
from radiossl.transforms.compose import random_apply


def _corners(
    batch: int, count: int, limits: torch.Tensor, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``[batch, count, 3]`` corners uniform on ``[0, limit)`` per axis (0 where the limit is 0)."""
    u = torch.rand(batch, count, 3, generator=generator, device=device)
    return torch.minimum((u * limits.clamp_min(1)).long(), (limits - 1).clamp_min(0))


def patch_swap(x: torch.Tensor, patch_size: Sequence[int], iterations: int, generator: torch.Generator) -> torch.Tensor:
    """Swap ``iterations`` random pairs of ``patch_size`` patches in every sample."""
    check_batch(x, "patch_swap")
    batch, channels, *spatial = x.shape
    patch = [int(p) for p in patch_size]
    if len(patch) != 3 or any(p < 1 for p in patch):
        raise ValueError(f"patch_size must be three positive integers, got {tuple(patch_size)}")
    if any(p > s for p, s in zip(patch, spatial, strict=True)):
        raise ValueError(f"patch size {tuple(patch)} is larger than the image {tuple(spatial)}")
    limits = torch.tensor([s - p for s, p in zip(spatial, patch, strict=True)], device=x.device)
    if int(limits.max()) < 2:
        raise ValueError(f"image {tuple(spatial)} leaves no room to place two different {tuple(patch)} patches")
    if iterations <= 0:
        return x
    device = x.device
    first = _corners(batch, iterations, limits, generator, device)
    second = _corners(batch, iterations, limits, generator, device)
    same = (first == second).all(dim=-1)
    while bool(same.any()):
        redraw = _corners(batch, iterations, limits, generator, device)
        second = torch.where(same.unsqueeze(-1), redraw, second)
        same = (first == second).all(dim=-1)
    sy, sz = spatial[1], spatial[2]
    strides = torch.tensor([sy * sz, sz, 1], device=device)
    grid = torch.meshgrid(*(torch.arange(p, device=device) for p in patch), indexing="ij")
    offsets = sum(g.reshape(-1) * s for g, s in zip(grid, strides, strict=True))
    start1 = (first * strides).sum(-1)
    start2 = (second * strides).sum(-1)
    out = x.reshape(batch, channels, -1).clone()
    size = offsets.numel()
    for i in range(iterations):
        index1 = (start1[:, i, None] + offsets).unsqueeze(1).expand(batch, channels, size)
        index2 = (start2[:, i, None] + offsets).unsqueeze(1).expand(batch, channels, size)
        patch1 = out.gather(2, index1)
        patch2 = out.gather(2, index2)
        out.scatter_(2, index2, patch1)
        out.scatter_(2, index1, patch2)
    return out.reshape(x.shape)


class RandomPatchSwap:
    """Swap ``iterations`` random patch pairs; per sample with probability ``p`` (PCRLv2: 8x4x4, 100, 1)."""

    def __init__(self, patch_size: Sequence[int] = (8, 4, 4), iterations: int = 100, p: float = 1.0) -> None:
        self.patch_size = tuple(int(p) for p in patch_size)
        self.iterations = int(iterations)
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_apply(
            x, self.p, generator, lambda sub: patch_swap(sub, self.patch_size, self.iterations, generator)
        )

    def __repr__(self) -> str:
        return f"RandomPatchSwap(patch_size={self.patch_size}, iterations={self.iterations}, p={self.p:g})"
