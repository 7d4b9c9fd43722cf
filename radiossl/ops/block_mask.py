"""Block masks for masked image modelling, and re-applying them to feature maps (SparK-style).

A mask is a boolean tensor ``[B, 1, gx, gy, gz]`` that is ``True`` where a block is **hidden**. It
lives on a grid of ``block_size``-voxel blocks: :func:`random_block_mask` hides exactly
``int(ratio · gx·gy·gz)`` blocks per sample, chosen uniformly, as nnssl's ``create_blocky_mask``
(``src/nnssl/training/nnsslTrainer/masked_image_modeling/BaseMAETrainer.py``) does.

:func:`zero_masked` multiplies any tensor ``[B, C, X, Y, Z]`` by the visible part of the mask, resized
to the tensor's spatial size: nearest upsampling when the tensor is finer than the grid (the input,
early encoder stages), and when it is coarser a cell stays visible if any block it covers is visible.
Applied to the input it zeroes the masked voxels; applied after every encoder stage it keeps the
masked regions at exactly zero all the way down, so no convolution can carry information into them
(SparK, Tian et al., ICLR 2023, emulated with dense convolutions).

Example:
    >>> import numpy as np, torch
    >>> mask = random_block_mask(2, (4, 4, 2), 0.75, np.random.default_rng(0))
    >>> mask.shape, int(mask[0].sum())
    (torch.Size([2, 1, 4, 4, 2]), 24)
    >>> zero_masked(torch.ones(2, 1, 64, 64, 32), mask).mean().item()
    0.25
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def mask_grid(spatial_size: Sequence[int], block_size: int) -> tuple[int, int, int]:
    """Blocks per axis of a ``spatial_size`` volume cut into ``block_size``³ blocks (sizes must divide)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    sizes = tuple(int(s) for s in spatial_size)
    if len(sizes) != 3 or any(s % block_size for s in sizes):
        raise ValueError(f"every spatial size must be a multiple of the block size {block_size}, got {sizes}")
    return sizes[0] // block_size, sizes[1] // block_size, sizes[2] // block_size


def random_block_mask(
    batch_size: int, grid: Sequence[int], ratio: float, rng: np.random.Generator, device: torch.device | None = None
) -> torch.Tensor:
    """``[B, 1, *grid]`` bool, ``True`` = hidden: exactly ``int(ratio · cells)`` hidden cells per sample."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    cells = int(np.prod(grid))
    hidden = int(ratio * cells)
    mask = np.zeros((batch_size, cells), dtype=bool)
    for row in mask:
        row[rng.permutation(cells)[:hidden]] = True
    return torch.from_numpy(mask.reshape(batch_size, 1, *grid)).to(device)


def visible_at(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The visible part (``~mask``) as float ``[B, 1, *size]`` (see the module docstring for the resizing)."""
    visible = (~mask).float()
    grid = tuple(mask.shape[2:])
    size = tuple(int(s) for s in size)
    if size == grid:
        return visible
    if all(s % g == 0 for s, g in zip(size, grid, strict=True)):
        return F.interpolate(visible, size=size, mode="nearest")
    if all(g % s == 0 for s, g in zip(size, grid, strict=True)):
        return F.max_pool3d(visible, kernel_size=tuple(g // s for s, g in zip(size, grid, strict=True)))
    raise ValueError(f"a mask on a {grid} grid cannot be resized to {size}: neither divides the other")


def zero_masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with every hidden position set to 0 (mask resized to ``x``'s spatial size; any dtype)."""
    if x.dim() != 5 or mask.dim() != 5 or mask.shape[0] != x.shape[0]:
        raise ValueError(
            f"expected x [B, C, X, Y, Z] and mask [B, 1, ...], got {tuple(x.shape)} and {tuple(mask.shape)}"
        )
    return x * visible_at(mask, x.shape[2:]).to(x.dtype)
