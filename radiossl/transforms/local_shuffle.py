"""Models Genesis' local pixel shuffling, vectorised over blocks and samples.

The original, for one cube ``(X, Y, Z)``, loops 10,000 times: draw a block size
``b ∈ [1, S // 10]`` and a corner ``∈ [0, S - b]`` per axis, read that block from the *untouched*
input, permute its voxels uniformly at random and write it into the output; later blocks
overwrite earlier ones where they overlap. (So an output voxel holds a value from inside the last
block that covers it; values can be duplicated or lost where blocks overlap, and uncovered voxels
keep their value.)

This implementation produces exactly that distribution without a Python loop over blocks:

1. all block sizes and corners of the batch are drawn at once;
2. blocks are grouped by shape (at most ``(X//10)·(Y//10)·(Z//10)`` shapes, 108 for 64x64x32), so
   each group's voxel indices are one broadcast ``corner + offsets``;
3. each block's permutation comes from sorting random keys: a key packs random bits above a
   voxel's offset inside the block, so sorting a block's keys lists its offsets in uniformly random
   order (ties need 40+ equal random bits). On CPU the random bits come from NumPy's PCG64 and the
   rows are sorted with NumPy's SIMD sort (5-10x faster than ``torch.sort`` on short rows); on GPU
   both are torch operations;
4. "later blocks win" is resolved with one ``scatter_reduce(amax)`` of ``(block order << 32) |
   source index`` over the destination voxels; the output is a single gather.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> x = torch.rand(2, 1, 32, 32, 16)
    >>> y = local_shuffle(x, generator_for(0), n_blocks=500)
    >>> bool(torch.isin(y, x).all()), bool((y != x).any())
    (True, True)
"""

from __future__ import annotations

import numpy as np
import torch

from radiossl.transforms._random import check_batch
from radiossl.transforms.compose import random_apply

N_BLOCKS = 10_000
"""Blocks per cube (the original's constant, independent of the cube size)."""


def block_limits(spatial: tuple[int, int, int], divisor: int = 10) -> tuple[int, int, int]:
    """Largest block edge per axis, ``max(1, S // divisor)``."""
    lx, ly, lz = (max(1, s // divisor) for s in spatial)
    return lx, ly, lz


def _sorted_random_keys(
    low: torch.Tensor, rows: int, low_bits: int, generator: torch.Generator
) -> torch.Tensor:
    """``[rows, n]`` keys ``(random high bits) | low[j]``, each row sorted ascending (int64).

    Sorting puts every row's low values in uniformly random order (a random permutation per row).
    On CPU the random bits come from a NumPy PCG64 stream seeded from ``generator`` and the rows are
    sorted with NumPy's SIMD sort; on other devices both are torch operations.
    """
    n = low.numel()
    high_mask = ~((1 << low_bits) - 1)
    if low.device.type == "cpu":
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        bits = np.random.default_rng(seed).integers(0, 2**62, size=(rows, n), dtype=np.int64)
        np.bitwise_and(bits, high_mask, out=bits)
        np.bitwise_or(bits, low.numpy(), out=bits)
        bits.sort(axis=1)
        return torch.from_numpy(bits)
    bits = torch.randint(0, 2**62, (rows, n), generator=generator, device=low.device)
    bits = (bits & high_mask) | low
    return torch.sort(bits, dim=1).values


def local_shuffle(
    x: torch.Tensor, generator: torch.Generator, n_blocks: int = N_BLOCKS, divisor: int = 10
) -> torch.Tensor:
    """Shuffle voxels inside ``n_blocks`` random blocks of every sample (all channels move together)."""
    check_batch(x, "local_shuffle")
    if n_blocks <= 0:
        return x
    batch, channels, sx, sy, sz = x.shape
    device = x.device
    lx, ly, lz = block_limits((sx, sy, sz), divisor)
    volume = sx * sy * sz
    if batch * volume >= 2**32 or n_blocks >= 2**30:
        raise ValueError("local_shuffle: batch too large for 32-bit voxel indices; split it")

    def draw(limit: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        edge = torch.randint(1, limit + 1, (batch, n_blocks), generator=generator, device=device)
        u = torch.rand(batch, n_blocks, generator=generator, device=device, dtype=torch.float64)
        corner = torch.minimum((u * (size - edge + 1)).long(), size - edge)
        return edge, corner

    (ex, cx), (ey, cy), (ez, cz) = draw(lx, sx), draw(ly, sy), draw(lz, sz)
    sample = torch.arange(batch, device=device).unsqueeze(1)
    start = (sample * volume + cx * (sy * sz) + cy * sz + cz).reshape(-1)
    order_tag = ((torch.arange(n_blocks, device=device) + 1) << 32).repeat(batch)
    shape_id = ((ex - 1) * (ly * lz) + (ey - 1) * lz + (ez - 1)).reshape(-1)
    # Group blocks by shape; the order inside a group is irrelevant (the tag keeps the block order).
    sorted_shape, rows = torch.sort(shape_id)
    counts = torch.bincount(sorted_shape, minlength=lx * ly * lz).tolist()
    start, order_tag = start[rows], order_tag[rows]

    shapes = [(s // (ly * lz) + 1, (s // lz) % ly + 1, s % lz + 1) for s in range(lx * ly * lz)]
    total = sum(c * bx * by * bz for c, (bx, by, bz) in zip(counts, shapes, strict=True))
    # Scatter index = the shuffled destination, value = (block order << 32) | source voxel; a uniformly
    # random permutation and its inverse have the same distribution, so either side may be shuffled.
    targets = torch.empty(total, dtype=torch.int64, device=device)
    values = torch.empty(total, dtype=torch.int64, device=device)
    row, pos = 0, 0
    for count, (bx, by, bz) in zip(counts, shapes, strict=True):
        if count == 0:
            continue
        n = bx * by * bz
        offsets = (
            torch.arange(bx, device=device).view(-1, 1, 1) * (sy * sz)
            + torch.arange(by, device=device).view(1, -1, 1) * sz
            + torch.arange(bz, device=device).view(1, 1, -1)
        ).reshape(-1)
        block_start = start[row : row + count].unsqueeze(1)
        tagged_start = block_start + order_tag[row : row + count].unsqueeze(1)
        row += count
        target = targets[pos : pos + count * n].view(count, n)
        value = values[pos : pos + count * n].view(count, n)
        pos += count * n
        torch.add(tagged_start, offsets, out=value)
        if n == 1:
            torch.add(block_start, offsets, out=target)
            continue
        low_bits = int(offsets[-1]).bit_length()
        shuffled = _sorted_random_keys(offsets, count, low_bits, generator).to(device)
        shuffled &= (1 << low_bits) - 1
        torch.add(block_start, shuffled, out=target)
    # Voxel v ends up holding the value of the last block covering it; uncovered voxels keep v.
    winner = torch.arange(batch * volume, device=device, dtype=torch.int64)
    winner.scatter_reduce_(0, targets, values, reduce="amax")
    source = winner & 0xFFFFFFFF
    flat = x.movedim(1, -1).reshape(batch * volume, channels)
    return flat[source].reshape(batch, sx, sy, sz, channels).movedim(-1, 1)


class LocalShuffle:
    """Local pixel shuffling, applied per sample with probability ``p`` (published 0.5), 10,000 blocks."""

    def __init__(self, p: float = 0.5, n_blocks: int = N_BLOCKS, divisor: int = 10) -> None:
        self.p = p
        self.n_blocks = n_blocks
        self.divisor = divisor

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_apply(
            x, self.p, generator, lambda sub: local_shuffle(sub, generator, self.n_blocks, self.divisor)
        )

    def __repr__(self) -> str:
        return f"LocalShuffle(p={self.p:g}, n_blocks={self.n_blocks})"
